"""The edgeroll.io/v1alpha1 API: models for RouterConfig and EdgeCluster, and CRDs generated from them."""

from edgeroll.api.common import API_VERSION, GROUP, VERSION

__all__ = ["API_VERSION", "GROUP", "VERSION"]
