"""Field names of a Cosmo execution config that several render modules read, in both spellings.

protojson writes camelCase; a config may also come in the proto's own snake_case names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

FLAGS = ("featureFlagConfigs", "feature_flag_configs")
BY_NAME = ("configByFeatureFlagName", "config_by_feature_flag_name")
COMPATIBILITY = ("compatibilityVersion", "compatibility_version")
FLAG_FIELDS = ("engineConfig", "engine_config", "version", "subgraphs")
ENGINE = ("engineConfig", "engine_config")
SCHEMA = ("graphqlSchema", "graphql_schema")
# What a base-graph overlay also patches into every flag's config: a flag keeps its own version.
OVERLAID_FLAG_FIELDS = tuple(f for f in FLAG_FIELDS if f != "version")


def flag_maps(document: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(flags key, by-name key, flag configs by name) for every spelling the document holds as objects."""
    for outer in FLAGS:
        flags = document.get(outer)
        if not isinstance(flags, Mapping):
            continue
        for inner in BY_NAME:
            by_name = flags.get(inner)
            if isinstance(by_name, Mapping):
                yield outer, inner, by_name
