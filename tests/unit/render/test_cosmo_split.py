"""Split config loading (render/cosmo_split.py) on a config `wgc router compose` wrote with a feature
flag (data/feature-flags/graph.yaml): the files are what Cosmo's control plane writes, and a router that
assembles them gets back the config it would have loaded whole."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edgeroll.render.cosmo_split import BASE, split_config
from edgeroll.render.formats import ConfigFormat, finalize

pytestmark = pytest.mark.unit

COMPOSED = json.loads((Path(__file__).parent / "data" / "cosmo-feature-flags.json").read_text())


def _served() -> dict[str, Any]:
    return finalize(ConfigFormat.COSMO, COMPOSED)  # what the cache serves whole (with our version)


def test_the_base_is_the_config_without_its_feature_flags() -> None:
    served = _served()
    base = json.loads(split_config(served).base.body)
    assert "featureFlagConfigs" not in base
    assert base == {k: v for k, v in served.items() if k != "featureFlagConfigs"}
    assert split_config(served).base.version == served["version"]


def test_each_flag_is_its_own_config_with_the_base_compatibility_version() -> None:
    served = _served()
    split = split_config(served)
    assert list(split.flags) == ["flash-sale"]
    flag = json.loads(split.flags["flash-sale"].body)
    composed = served["featureFlagConfigs"]["configByFeatureFlagName"]["flash-sale"]
    assert flag == {**composed, "compatibilityVersion": served["compatibilityVersion"]}
    assert "flashSalePriceCents" in flag["engineConfig"]["graphqlSchema"]
    assert "flashSalePriceCents" not in json.loads(split.base.body)["engineConfig"]["graphqlSchema"]


def test_the_mapper_names_every_file_by_the_sha256_of_its_bytes() -> None:
    split = split_config(_served())
    mapper = json.loads(split.mapper.body)
    assert mapper == {
        BASE: hashlib.sha256(split.base.body).hexdigest(),
        "flash-sale": hashlib.sha256(split.flags["flash-sale"].body).hexdigest(),
    }
    assert split.mapper.version == hashlib.sha256(split.mapper.body).hexdigest()


def test_a_router_assembling_the_files_gets_the_whole_config_back() -> None:
    served = _served()
    split = split_config(served)
    assembled = json.loads(split.base.body)
    flags = {name: json.loads(f.body) for name, f in split.flags.items()}
    for flag in flags.values():
        flag.pop("compatibilityVersion")  # the router keeps the base's
    assembled["featureFlagConfigs"] = {"configByFeatureFlagName": flags}
    assert assembled == served


def test_only_a_changed_file_changes_its_hash() -> None:
    served = _served()
    before = json.loads(split_config(served).mapper.body)
    changed = json.loads(json.dumps(served))
    changed["featureFlagConfigs"]["configByFeatureFlagName"]["flash-sale"]["version"] = "another"
    after = json.loads(split_config(changed).mapper.body)
    assert after[BASE] == before[BASE] and after["flash-sale"] != before["flash-sale"]


def test_a_config_without_flags_splits_into_its_base_alone() -> None:
    served = {k: v for k, v in _served().items() if k != "featureFlagConfigs"}
    split = split_config(served)
    assert split.flags == {} and list(json.loads(split.mapper.body)) == [BASE]
