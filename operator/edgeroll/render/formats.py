"""Config formats: `json` (any object) and `cosmo` (a Cosmo router execution config).

For `cosmo`, the document must parse as the protojson form of
`wg.cosmo.node.v1.RouterConfig`. We check the types of the fields the router
reads (unknown fields are discarded by the router, so they pass), and we set
its `version`:

    version = sha256(canonical(config without "version")).hexdigest()

The version is a pure function of the content, so it is stable across
renders and operator restarts, and a router's `{"version": ...}` request
round-trips: the edge cache compares it with the served config's version.
The served bytes are canonical(config with that version), and the revision
digest is sha256 over those bytes (so digest != version, both are stable).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from edgeroll.api.routerconfig import ConfigFormat
from edgeroll.render.canonical import canonical_json, hashed_object
from edgeroll.render.cosmo_fields import ENGINE, SCHEMA, flag_maps
from edgeroll.render.errors import PathSegment, RenderError, json_path

# A compact description of the protojson messages the router reads. Each message maps
# a JSON field name (lowerCamelCase; protojson also accepts the proto snake_case name)
# to a type: a scalar name, ("list", T), ("map", T), ("enum", {...}) or a message dict.
# "object" accepts any object: the router parses it, we do not go deeper.
Type = Any

_INT = "int"  # int32/int64: a JSON number or a decimal string
_STR = "string"
_BOOL = "bool"
_OBJ = "object"

_TYPE_FIELD: dict[str, Type] = {
    "typeName": _STR,
    "fieldNames": ("list", _STR),
    "externalFieldNames": ("list", _STR),
    "requireFetchReasonsFieldNames": ("list", _STR),
}
_REQUIRED_FIELD: dict[str, Type] = {
    "typeName": _STR,
    "fieldName": _STR,
    "selectionSet": _STR,
    "disableEntityResolver": _BOOL,
    "conditions": ("list", _OBJ),
}
_DATASOURCE: dict[str, Type] = {
    "kind": ("enum", {"STATIC", "GRAPHQL", "PUBSUB"}),
    "rootNodes": ("list", _TYPE_FIELD),
    "childNodes": ("list", _TYPE_FIELD),
    "overrideFieldPathFromAlias": _BOOL,
    "customGraphql": _OBJ,
    "customStatic": _OBJ,
    "directives": ("list", {"directiveName": _STR, "renameTo": _STR}),
    "requestTimeoutSeconds": _INT,
    "id": _STR,
    "keys": ("list", _REQUIRED_FIELD),
    "provides": ("list", _REQUIRED_FIELD),
    "requires": ("list", _REQUIRED_FIELD),
    "customEvents": _OBJ,
    "entityInterfaces": ("list", {"interfaceTypeName": _STR, "concreteTypeNames": ("list", _STR)}),
    "interfaceObjects": ("list", {"interfaceTypeName": _STR, "concreteTypeNames": ("list", _STR)}),
    "costConfiguration": _OBJ,
    "entityCachingConfiguration": _OBJ,
}
_FIELD_CONFIGURATION: dict[str, Type] = {
    "typeName": _STR,
    "fieldName": _STR,
    "argumentsConfiguration": (
        "list",
        {"name": _STR, "sourceType": ("enum", {"OBJECT_FIELD", "FIELD_ARGUMENT"})},
    ),
    "authorizationConfiguration": _OBJ,
    "subscriptionFilterCondition": _OBJ,
}
_ENGINE: dict[str, Type] = {
    "defaultFlushInterval": _INT,
    "datasourceConfigurations": ("list", _DATASOURCE),
    "fieldConfigurations": ("list", _FIELD_CONFIGURATION),
    "graphqlSchema": _STR,
    "typeConfigurations": ("list", {"typeName": _STR, "renameTo": _STR}),
    "stringStorage": ("map", _STR),
    "graphqlClientSchema": _STR,
}
_SUBGRAPH: dict[str, Type] = {"id": _STR, "name": _STR, "routingUrl": _STR}
_FEATURE_FLAG_CONFIG: dict[str, Type] = {
    "engineConfig": _ENGINE,
    "version": _STR,
    "subgraphs": ("list", _SUBGRAPH),
}
_ROUTER_CONFIG: dict[str, Type] = {
    "engineConfig": _ENGINE,
    "version": _STR,
    "subgraphs": ("list", _SUBGRAPH),
    "featureFlagConfigs": {"configByFeatureFlagName": ("map", _FEATURE_FLAG_CONFIG)},
    "compatibilityVersion": _STR,
}


@functools.cache  # called for every field of every message in the config: 2 MB has ~30 000
def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _fail(segments: tuple[PathSegment, ...], detail: str) -> RenderError:
    return RenderError("InvalidConfig", json_path(segments), detail)


def _check(value: Any, type_: Type, segments: tuple[PathSegment, ...]) -> None:
    if value is None:  # protojson: null means "unset" for every field type
        return
    if type_ == _STR:
        if not isinstance(value, str):
            raise _fail(segments, f"expected a string, got {_kind(value)}")
    elif type_ == _BOOL:
        if not isinstance(value, bool):
            raise _fail(segments, f"expected a boolean, got {_kind(value)}")
    elif type_ == _INT:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
        if not ok:
            raise _fail(segments, f"expected an integer, got {_kind(value)}")
    elif type_ == _OBJ:
        if not isinstance(value, dict):
            raise _fail(segments, f"expected an object, got {_kind(value)}")
    elif isinstance(type_, tuple) and type_[0] == "list":
        if not isinstance(value, list):
            raise _fail(segments, f"expected an array, got {_kind(value)}")
        if type_[1] == _STR and all(isinstance(item, str) for item in value):
            return  # the common case (field names), without a call per item
        for i, item in enumerate(value):
            _check(item, type_[1], (*segments, i))
    elif isinstance(type_, tuple) and type_[0] == "map":
        if not isinstance(value, dict):
            raise _fail(segments, f"expected an object, got {_kind(value)}")
        for k, item in value.items():
            _check(item, type_[1], (*segments, k))
    elif isinstance(type_, tuple) and type_[0] == "enum":
        names: set[str] = type_[1]
        if isinstance(value, int) and not isinstance(value, bool):
            return  # protojson accepts enum numbers
        if not isinstance(value, str) or value not in names:
            raise _fail(segments, f"expected one of {sorted(names)}, got {value!r}")
    elif isinstance(type_, Mapping):
        if not isinstance(value, dict):
            raise _fail(segments, f"expected an object, got {_kind(value)}")
        for name, sub in type_.items():
            for candidate in (name, _snake(name)):
                if candidate in value:
                    _check(value[candidate], sub, (*segments, candidate))
    else:  # pragma: no cover - a typo in the tables above
        raise AssertionError(f"unknown type {type_!r}")


# A compiled type: True exactly when `_check` would raise nothing for a value that is not None
# (the callers skip None, as `_check` does). Built once from the tables above.
Predicate = Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.lstrip("-").isdigit()
    )


def _compile(type_: Type) -> Predicate:
    """The predicate of `type_`: no path is built, since the error path is `_check`'s job."""
    # `T.__instancecheck__` is isinstance(value, T) as one C call: most fields are strings.
    if type_ == _STR:
        return str.__instancecheck__
    if type_ == _BOOL:
        return bool.__instancecheck__
    if type_ == _INT:
        return _is_int
    if type_ == _OBJ:
        return dict.__instancecheck__
    if isinstance(type_, tuple) and type_[0] == "enum":
        names: set[str] = type_[1]
        return lambda value: (
            (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, str) and value in names)
        )
    if isinstance(type_, tuple) and type_[0] in ("list", "map"):
        return _compile_container(type_[0], _compile(type_[1]))
    if isinstance(type_, Mapping):
        return _compile_message(type_)
    raise AssertionError(f"unknown type {type_!r}")  # pragma: no cover - a typo in the tables


def _compile_container(kind: str, item_ok: Predicate) -> Predicate:
    container: type[Any] = list if kind == "list" else dict

    def ok(value: Any) -> bool:
        if not isinstance(value, container):
            return False
        items = value if container is list else value.values()
        # Items are rarely null: try without the None test first (map() keeps the loop in C).
        return all(map(item_ok, items)) or all(item is None or item_ok(item) for item in items)

    return ok


def _compile_message(fields: Mapping[str, Type]) -> Predicate:
    """Walks the keys a message has (a handful) instead of every field of its schema in both
    spellings: the lookup table holds both, so a key is one dict lookup."""
    by_key: dict[str, Predicate] = {}
    for name, sub in fields.items():
        by_key[name] = by_key[_snake(name)] = _compile(sub)
    lookup = by_key.get

    def ok(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for key, item in value.items():
            if item is not None and (check := lookup(key)) is not None and not check(item):
                return False
        return True

    return ok


_ROUTER_CONFIG_OK = _compile(_ROUTER_CONFIG)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def validate_cosmo(document: Mapping[str, Any]) -> None:
    """Raise RenderError naming the JSON path unless `document` parses as an execution config."""
    engine = document.get("engineConfig", document.get("engine_config"))
    if engine is None:
        raise _fail(("engineConfig",), "required: a Cosmo execution config carries engineConfig")
    top = dict(document)
    if not _ROUTER_CONFIG_OK(top):
        # Rare: walk again, in schema order, to raise the first error with its path as before (and
        # should the two ever disagree, `_check` decides).
        _check(top, _ROUTER_CONFIG, ())
    schema = engine.get("graphqlSchema", engine.get("graphql_schema"))
    if not isinstance(schema, str) or not schema.strip():
        raise _fail(("engineConfig", "graphqlSchema"), "required: the composed GraphQL schema")
    _validate_flags(document)


def _validate_flags(document: Mapping[str, Any]) -> None:
    """Every feature flag's config is a graph the router serves: it needs engineConfig and a schema.

    Runs after `_check`, so each flag config is an object or null and each engineConfig too.
    """
    for outer, inner, by_name in flag_maps(document):
        for name in sorted(by_name):
            flag = by_name[name] or {}  # null is unset: a flag without an engineConfig
            key = next((k for k in ENGINE if k in flag), ENGINE[0])
            engine = flag.get(key)
            at: tuple[PathSegment, ...] = (outer, inner, name, key)
            if engine is None:
                raise _fail(at, "required: every feature flag's config carries engineConfig")
            schema_key = next((k for k in SCHEMA if k in engine), SCHEMA[0])
            schema = engine.get(schema_key)
            if not isinstance(schema, str) or not schema.strip():
                raise _fail((*at, schema_key), "required: the feature flag's composed GraphQL schema")


def cosmo_version(document: Mapping[str, Any]) -> str:
    """The content version: sha256 hex of the canonical config without its version."""
    without = {k: v for k, v in document.items() if k != "version"}
    return hashlib.sha256(canonical_json(without)).hexdigest()


def finalize(fmt: ConfigFormat, document: Any) -> dict[str, Any]:
    """Validate a rendered document for its format and return the document to serve."""
    if not isinstance(document, dict):
        raise _fail((), f"the config must be a JSON object, got {_kind(document)}")
    if fmt is ConfigFormat.COSMO:
        validate_cosmo(document)
        return {**document, "version": cosmo_version(document)}
    return document


def served(fmt: ConfigFormat, document: Any, plain: bool | None = None) -> tuple[bytes, str]:
    """The bytes to serve, `canonical_json(finalize(fmt, document))`, and their sha256 hex, with the
    config serialized once instead of twice.

    A cosmo config is hashed without its version and served with it: each top-level member is
    serialized once, and both objects are hashed in one pass (`hashed_object`): for a 2 MB config,
    one sha256 where there were two (the version's, the digest's). `plain`: as for `canonical_json`.
    """
    if not isinstance(document, dict):
        raise _fail((), f"the config must be a JSON object, got {_kind(document)}")
    if fmt is not ConfigFormat.COSMO or not all(isinstance(k, str) for k in document):
        # json, or keys JSON would convert: the plain way (a version string keeps a plain document plain)
        body = canonical_json(finalize(fmt, document), plain)
        return body, hashlib.sha256(body).hexdigest()
    validate_cosmo(document)
    members = {k: canonical_json(v, plain) for k, v in document.items() if k != "version"}
    return hashed_object(members, "version")


def served_bytes(fmt: ConfigFormat, document: Any, plain: bool | None = None) -> bytes:
    """The bytes of `served`, for callers that need no digest."""
    return served(fmt, document, plain)[0]
