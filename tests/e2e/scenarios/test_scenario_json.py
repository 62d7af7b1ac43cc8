"""A generic JSON config (feature flags, no Cosmo): published, signed and served by every edge cache."""

from __future__ import annotations

import pytest
from scenario_kit import Fleet, assert_served, expect, fetch_from_edges

from edgeroll.api.routerconfig import ConfigFormat

pytestmark = pytest.mark.e2e

FLAGS = {
    "checkout": {"newPaymentFlow": False, "maxCartItems": 50},
    "banner": "Free shipping this week",
    "experiments": [{"name": "one-click", "percent": 5}],
}


def test_json_config_reaches_every_edge(fleet: Fleet) -> None:
    e2e = fleet.e2e
    rc = e2e.routerconfig("flags", FLAGS, format="json")
    del rc["spec"]["cosmo"]  # spec.cosmo is only allowed with format cosmo
    e2e.apply(rc)
    status = e2e.wait_ready("flags")

    want = expect(ConfigFormat.JSON, FLAGS)
    assert status["revision"]["digest"] == want.digest and status["readyClusters"] == "3/3"
    body = (
        e2e.lab.s3_client().get_object(Bucket=e2e.lab.s3_bucket, Key=status["revision"]["key"])["Body"].read()
    )
    assert body.startswith(
        b'{"banner":"Free shipping this week","checkout":'
    )  # canonical: sorted keys, compact

    for result in fetch_from_edges(fleet, "flags").values():
        assert_served(result, want)
