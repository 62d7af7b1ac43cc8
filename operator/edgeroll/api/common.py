"""Shared API types: base model, label selectors, secret references, conditions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "edgeroll.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Regexes as Kubernetes validates them (apimachinery/pkg/util/validation).
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
LABEL_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_KEY = rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{LABEL_NAME}$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
HTTP_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"  # a base URL: no query, no fragment


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored (the CRD prunes them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _kx(**extra: Any) -> dict[str, Any]:
    """Schema extras (x-kubernetes-*, CEL rules) attached to a field or model."""
    return dict(extra)


def _cel_string(value: str) -> str:
    """Escape for a single-quoted CEL string literal (CEL rejects `\\.` as an escape)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class LabelSelectorRequirement(ApiModel):
    """One `matchExpressions` term of a standard Kubernetes LabelSelector."""

    model_config = ConfigDict(
        json_schema_extra=_kx(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "self.operator in ['In', 'NotIn'] ? "
                        "(has(self.values) && size(self.values) > 0) : "
                        "(!has(self.values) || size(self.values) == 0)",
                        "message": "values must be non-empty for In and NotIn, "
                        "and empty for Exists and DoesNotExist",
                    }
                ]
            }
        )
    )

    key: str = Field(min_length=1, max_length=317, pattern=LABEL_KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = Field(
        default=None, max_length=64, json_schema_extra=_kx(items={"type": "string", "maxLength": 63})
    )


class LabelSelector(ApiModel):
    """A standard LabelSelector: every term must match; an empty selector matches everything."""

    match_labels: dict[str, str] | None = Field(
        default=None,
        json_schema_extra=_kx(
            maxProperties=64,
            additionalProperties={"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": f"self.all(k, size(k) <= 317 && k.matches('{_cel_string(LABEL_KEY)}'))",
                        "message": "matchLabels keys must be valid label keys",
                    }
                ]
            },
        ),
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=32)


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace as the referring object."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    key: str = Field(min_length=1, max_length=253, pattern=CONFIG_KEY)


class NamespacedSecretKeyRef(SecretKeyRef):
    """A key of a Secret in the given namespace (of the hub cluster)."""

    namespace: str = Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A kstatus-style condition (metav1.Condition)."""

    type: str = Field(max_length=316)
    status: ConditionStatus
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = Field(default=None, json_schema_extra=_kx(format="date-time"))
    observed_generation: int | None = None
