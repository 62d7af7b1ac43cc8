"""Generated bad RouterConfigs for the bad-input test: one fault each, and where it must be named.

Every case starts from a valid RouterConfig and breaks exactly one thing. `tokens` lists the
strings of which at least one must appear in the refusal (CRD schema, CEL rules, server-side
field validation) or in the Stalled condition the operator reports (render, gather, pydantic):
the field path, the JSON path inside the config, or the ConfigMap it came from. Which of the
two catches a case is not fixed here; that it is caught, and named, is.

`SELF` in a spec, ConfigMap or token stands for the case's own name, known only once cases are
numbered (a case's ConfigMap carries its RouterConfig's name).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from edgeroll.api.common import CONFIG_KEY, DNS1123_SUBDOMAIN, LABEL_KEY, LABEL_VALUE
from edgeroll.render.errors import json_path
from edgeroll.render.limits import MAX_DEPTH

SELF = "__self__"

# Deep-nesting cases (issue 11): the apiserver accepts JSON nested up to 10000 levels. A case
# holds a marker string, `to_json` writes the nesting as text: hypothesis lowers the recursion
# limit while it draws, and the stdlib json module recurses. The test reads the objects back
# from `kubectl get -o json`, so give json room (the main thread's 8 MiB stack holds 10000 levels).
DEEP = (500, 1000, 3000)
_DEEP_MARKER = re.compile(r'"__deep:(object|list):([0-9]+)__"')
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))


def deep(kind: str, depth: int) -> str:
    """A marker for `depth` levels of `{"a": ...}` or `[...]` around a string."""
    return f"__deep:{kind}:{depth}__"


def to_json(document: Any) -> str:
    """JSON for kubectl (raw UTF-8), with every `deep` marker written out as nested text."""

    def nest(match: re.Match[str]) -> str:
        depth = int(match.group(2))
        opening, closing = ('{"a":', "}") if match.group(1) == "object" else ("[", "]")
        return opening * depth + '"leaf"' + closing * depth

    return _DEEP_MARKER.sub(nest, json.dumps(document, ensure_ascii=False))


MINIMAL_COSMO: dict[str, Any] = {
    "version": "0",
    "compatibilityVersion": "1:0.1.0",
    "engineConfig": {
        "defaultFlushInterval": "500",
        "graphqlSchema": "type Query { hello: String }",
        "datasourceConfigurations": [{"kind": "GRAPHQL", "id": "0", "rootNodes": []}],
        "stringStorage": {"k": "v"},
    },
    "subgraphs": [{"id": "0", "name": "hello", "routingUrl": "http://hello:4001/graphql"}],
}

KNOWN_FIELDS = {
    "": {
        "format",
        "config",
        "configFrom",
        "targets",
        "overlays",
        "signing",
        "cosmo",
        "cache",
        "revisionHistoryLimit",
        "rollout",
    },
    "cache": {"replicas", "image", "port", "resources"},
    "signing": {"secretRef"},
    "targets": {"clusterSelector"},
    "cosmo": {"organizationId", "federatedGraphId"},
}

# Printable ASCII and some non-ASCII letters; no surrogates or control characters, which
# belong to a YAML/JSON transport test rather than to this one.
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x7f"),
    max_size=40,
)
JSON_SCALAR = st.one_of(st.integers(-(2**31), 2**31), st.booleans(), TEXT)
NOT_A_STRING = st.one_of(st.integers(-1000, 1000), st.booleans(), st.lists(st.integers(0, 9), max_size=3))
WORD = st.from_regex(r"[a-z]{1,12}", fullmatch=True)  # valid as a name, a key, a label
NOT_AN_OBJECT = st.one_of(TEXT, st.integers(), st.booleans(), st.lists(st.integers(0, 9), max_size=3))


def _no_match(pattern: str, max_len: int) -> st.SearchStrategy[str]:
    return st.one_of(
        TEXT.filter(lambda s: re.fullmatch(pattern, s) is None),
        st.text(alphabet="abc", min_size=max_len + 1, max_size=max_len + 5),
    )


@dataclass
class Case:
    fault: str
    spec: dict[str, Any]
    tokens: tuple[str, ...]
    configmap: dict[str, Any] | None = None  # data/binaryData of a ConfigMap named like the case
    name: str = ""

    def key(self) -> str:
        return json.dumps([self.spec, self.configmap], sort_keys=True)

    def named(self, name: str, namespace: str) -> Case:
        def sub(value: Any) -> Any:
            text = json.dumps(value).replace(SELF, name)
            return json.loads(text)

        return Case(
            self.fault,
            sub(self.spec),
            tuple(t.replace(SELF, name).replace("__ns__", namespace) for t in self.tokens),
            sub(self.configmap),
            name,
        )


def base_spec(selector: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "cosmo",
        "config": copy.deepcopy(MINIMAL_COSMO),
        "targets": {"clusterSelector": copy.deepcopy(selector)},
        "signing": {"secretRef": {"name": "signing", "key": "key"}},
        "cosmo": {"organizationId": "org-rel", "federatedGraphId": "graph-rel"},
        "cache": {"replicas": 1},
    }


Broken = tuple[tuple[str, ...], dict[str, Any] | None]  # tokens; data of the case's ConfigMap
FAULTS: dict[str, Callable[[st.DrawFn, dict[str, Any]], Broken]] = {}


def fault(name: str) -> Callable[[Callable[[st.DrawFn, dict[str, Any]], Broken]], Any]:
    """Register a fault: it breaks one thing in a valid spec and says where that must be named."""

    def register(fn: Callable[[st.DrawFn, dict[str, Any]], Broken]) -> Any:
        FAULTS[name] = fn
        return fn

    return register


@st.composite
def bad_case(draw: st.DrawFn, selector: dict[str, Any], name: str) -> Case:
    spec = base_spec(selector)
    tokens, configmap = FAULTS[name](draw, spec)
    return Case(name, spec, tokens, configmap)


# --- refused by the CRD: schema, CEL rules, server-side field validation -----------------------


@fault("format")
def _format(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["format"] = draw(st.one_of(TEXT.filter(lambda s: s not in ("cosmo", "json")), NOT_A_STRING))
    return ("spec.format",), None


@fault("cache.port")
def _cache_port(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["cache"]["port"] = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=65536)))
    return ("spec.cache.port",), None


@fault("cache.replicas")
def _cache_replicas(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["cache"]["replicas"] = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=1001)))
    return ("spec.cache.replicas",), None


@fault("cache.image")
def _cache_image(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["cache"]["image"] = draw(st.one_of(st.just(""), st.text("x", min_size=513, max_size=600)))
    return ("spec.cache.image",), None


@fault("revisionHistoryLimit")
def _revisionhistorylimit(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["revisionHistoryLimit"] = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=101)))
    return ("spec.revisionHistoryLimit",), None


@fault("signing.name")
def _signing_name(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["signing"]["secretRef"]["name"] = draw(_no_match(DNS1123_SUBDOMAIN, 253))
    return ("spec.signing.secretRef.name",), None


@fault("signing.key")
def _signing_key(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["signing"]["secretRef"]["key"] = draw(_no_match(CONFIG_KEY, 253))
    return ("spec.signing.secretRef.key",), None


@fault("selector.operator")
def _selector_operator(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    op = draw(TEXT.filter(lambda s: s not in ("In", "NotIn", "Exists", "DoesNotExist")))
    spec["targets"]["clusterSelector"]["matchExpressions"] = [{"key": "region", "operator": op}]
    return ("spec.targets.clusterSelector.matchExpressions[0].operator",), None


@fault("selector.values")
def _selector_values(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    values = (
        []
        if op in ("In", "NotIn")
        else draw(st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), min_size=1, max_size=3))
    )
    spec["targets"]["clusterSelector"]["matchExpressions"] = [
        {"key": "region", "operator": op, "values": values}
    ]
    return ("spec.targets.clusterSelector.matchExpressions[0]",), None


@fault("selector.labelKey")
def _selector_labelkey(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    key = draw(_no_match(LABEL_KEY, 317).filter(lambda s: s != ""))
    spec["targets"]["clusterSelector"]["matchLabels"] = {key: "x"}
    return ("spec.targets.clusterSelector.matchLabels",), None


@fault("selector.labelValue")
def _selector_labelvalue(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    value = draw(_no_match(LABEL_VALUE, 63))
    spec["targets"]["clusterSelector"]["matchLabels"] = {"region": value}
    return ("spec.targets.clusterSelector.matchLabels",), None


@fault("config+configFrom")
def _config_configfrom(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["configFrom"] = {"configMapKeyRef": {"name": draw(WORD), "key": "cfg"}}
    return ("spec.config",), None


@fault("no-config")
def _no_config(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    del spec["config"]
    return ("spec.config",), None


@fault("cosmo-with-json")
def _cosmo_with_json(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["format"] = "json"
    spec["cosmo"]["organizationId"] = draw(WORD)
    return ("spec.cosmo",), None


@fault("unknown-field")
def _unknown_field(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    where = draw(st.sampled_from(sorted(KNOWN_FIELDS)))
    name = draw(
        st.from_regex(r"[a-z][a-zA-Z0-9]{2,15}", fullmatch=True).filter(
            lambda s: s not in KNOWN_FIELDS[where]
        )
    )
    (spec[where] if where else spec)[name] = draw(JSON_SCALAR)
    return (f"spec.{where}.{name}" if where else f"spec.{name}",), None


@fault("config-type")
def _config_type(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["config"] = draw(NOT_AN_OBJECT)
    return ("spec.config",), None


@fault("too-many-overlays")
def _too_many_overlays(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    n = draw(st.integers(33, 40))
    spec["overlays"] = [{"clusterSelector": {}, "patch": {"x": i}} for i in range(n)]
    return ("spec.overlays",), None


@fault("rollout.strategy")
def _rollout_strategy(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["rollout"] = {"strategy": draw(TEXT.filter(lambda s: s not in ("AllAtOnce", "Progressive")))}
    return ("spec.rollout.strategy",), None


@fault("cosmo.ids")
def _cosmo_ids(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    which = draw(st.sampled_from(["organizationId", "federatedGraphId"]))
    spec["cosmo"][which] = draw(st.one_of(st.just(""), st.text("g", min_size=254, max_size=300)))
    return (f"spec.cosmo.{which}",), None


@fault("configMapRef.name")
def _configmapref_name(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    del spec["config"]
    spec["configFrom"] = {"configMapKeyRef": {"name": draw(_no_match(DNS1123_SUBDOMAIN, 253)), "key": "cfg"}}
    return ("spec.configFrom.configMapKeyRef.name",), None


@fault("resources.count")
def _resources_count(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    n = draw(st.integers(17, 24))
    spec["cache"]["resources"] = {"requests": {f"example.com/r{i}": "1" for i in range(n)}}
    return ("spec.cache.resources.requests",), None


@fault("missing-required")
def _missing_required(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    which = draw(st.sampled_from(["targets", "signing", "format"]))
    del spec[which]
    return (f"spec.{which}",), None


# --- past the schema: the operator must report these as Stalled ---------------------------------


@fault("cosmo.no-engineConfig")
def _cosmo_no_engineconfig(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["config"] = draw(
        st.dictionaries(
            TEXT.filter(lambda s: s not in ("engineConfig", "engine_config")), JSON_SCALAR, max_size=4
        )
    )
    return ("$.engineConfig",), None


@fault("cosmo.graphqlSchema")
def _cosmo_graphqlschema(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["config"]["engineConfig"]["graphqlSchema"] = draw(
        st.one_of(st.sampled_from(["", " ", "\n\t"]), NOT_A_STRING)
    )
    return ("$.engineConfig.graphqlSchema",), None


@fault("cosmo.type")
def _cosmo_type(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    path, wrong = draw(
        st.sampled_from(
            [
                (("engineConfig", "defaultFlushInterval"), "int"),
                (("subgraphs",), "list"),
                (("subgraphs", 0, "routingUrl"), "str"),
                (("version",), "str"),
                (("compatibilityVersion",), "str"),
                (("engineConfig", "stringStorage", "k"), "str"),
                (("engineConfig", "datasourceConfigurations"), "list"),
                (("engineConfig", "datasourceConfigurations", 0, "rootNodes"), "list"),
            ]
        )
    )
    value = draw(
        {
            "int": st.one_of(
                TEXT.filter(lambda s: not s.lstrip("-").isdigit()),
                st.booleans(),
                # a whole float would reach the operator as an int (apimachinery decodes 2.0 as 2)
                st.floats(0.1, 9.9).filter(lambda f: not f.is_integer()),
                st.lists(st.integers(), max_size=2),
            ),
            "str": NOT_A_STRING,
            "list": st.one_of(
                TEXT,
                st.integers(),
                st.booleans(),
                st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers(), max_size=2),
            ),
        }[wrong]
    )
    target: Any = spec["config"]
    for seg in path[:-1]:
        target = target[seg]
    target[path[-1]] = value
    return (json_path(path),), None


@fault("cosmo.kind")
def _cosmo_kind(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["config"]["engineConfig"]["datasourceConfigurations"][0]["kind"] = draw(
        TEXT.filter(lambda s: s not in ("STATIC", "GRAPHQL", "PUBSUB"))
    )
    return ("$.engineConfig.datasourceConfigurations[0].kind",), None


@fault("overlay.unknown-ref")
def _overlay_unknown_ref(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    ref = draw(st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True).filter(lambda s: s != "name"))
    spec["overlays"] = [
        {"clusterSelector": {}, "patch": {"subgraphs": [{"routingUrl": f"http://${{cluster.{ref}}}"}]}}
    ]
    return ("spec.overlays[0].patch",), None


@fault("overlay.missing-label")
def _overlay_missing_label(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    key = draw(st.from_regex(r"[a-z]{1,10}", fullmatch=True).filter(lambda s: s not in ("tier",)))
    spec["overlays"] = [{"clusterSelector": {}, "patch": {"x": f"${{cluster.labels.missing{key}}}"}}]
    return ("spec.overlays[0].patch",), None


@fault("configMap.missing")
def _configmap_missing(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    del spec["config"]
    spec["configFrom"] = {"configMapKeyRef": {"name": f"absent-{draw(WORD)}-{SELF}", "key": "cfg"}}
    return ("spec.configFrom.configMapKeyRef",), None


@fault("configMap.key")
def _configmap_key(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    del spec["config"]
    spec["configFrom"] = {"configMapKeyRef": {"name": SELF, "key": draw(WORD.filter(lambda s: s != "cfg"))}}
    configmap = {"data": {"cfg": json.dumps(MINIMAL_COSMO)}}
    return ("spec.configFrom.configMapKeyRef.key",), configmap


@fault("configMap.not-json")
def _configmap_not_json(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    del spec["config"]
    spec["configFrom"] = {"configMapKeyRef": {"name": SELF, "key": "cfg"}}
    text = draw(TEXT.filter(lambda s: not _json_object(s)))
    configmap = {"data": {"cfg": text}}
    return (f"ConfigMap __ns__/{SELF} key cfg",), configmap


@fault("configMap.bad-gzip")
def _configmap_bad_gzip(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    del spec["config"]
    spec["configFrom"] = {"configMapKeyRef": {"name": SELF, "key": "cfg"}}
    junk = b"\x1f\x8b" + draw(st.binary(max_size=64))
    configmap = {"binaryData": {"cfg": base64.b64encode(junk).decode()}}
    return (f"ConfigMap __ns__/{SELF} key cfg",), configmap


@fault("signing.absent")
def _signing_absent(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["signing"]["secretRef"]["name"] = f"absent-{draw(WORD)}-{SELF}"
    return ("spec.signing.secretRef",), None


@fault("signing.absent-key")
def _signing_absent_key(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["signing"]["secretRef"]["key"] = draw(WORD.filter(lambda s: s != "key"))
    return ("spec.signing.secretRef.key",), None


@fault("deep.config")
def _deep_config(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["config"]["engineConfig"]["stringStorage"]["deep"] = deep("object", draw(st.sampled_from(DEEP)))
    return (f"limit of {MAX_DEPTH} levels",), None


@fault("deep.list")
def _deep_list(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    spec["config"]["subgraphs"].append(deep("list", draw(st.sampled_from(DEEP))))
    return (f"limit of {MAX_DEPTH} levels",), None


@fault("deep.overlay")
def _deep_overlay(draw: st.DrawFn, spec: dict[str, Any]) -> Broken:
    marker = deep(draw(st.sampled_from(["object", "list"])), draw(st.sampled_from(DEEP)))
    spec["overlays"] = [
        {"clusterSelector": {}, "patch": {"engineConfig": {"stringStorage": {"deep": marker}}}}
    ]
    return (f"limit of {MAX_DEPTH} levels",), None


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
