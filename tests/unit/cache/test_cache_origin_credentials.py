"""The cache's S3 origin without a static key: boto3's default credential chain (workload identity), and a
plain "no credentials" when that chain finds nothing, never a misleading "unreachable"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeroll.cache.origin import OriginError, S3Origin
from edgeroll.cache.settings import settings_from_env

pytestmark = pytest.mark.unit


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment where boto3's chain finds nothing: no keys, no profile files, no metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_settings_need_no_static_key() -> None:
    env = {
        "EDGEROLL_CONFIG_DIGEST": "sha256:" + "ab" * 32,
        "EDGEROLL_SIGNING_KEY": "k" * 32,
        "EDGEROLL_CONFIG_NAMESPACE": "prod",
        "EDGEROLL_CONFIG_NAME": "graph",
        "EDGEROLL_CONFIG_KEY": "edgeroll/prod/graph/x.json",
        "EDGEROLL_S3_BUCKET": "b",
    }
    assert settings_from_env(env).s3_bucket == "b"


@pytest.mark.usefixtures("no_aws_credentials")
def test_no_credentials_at_all_is_denied_and_says_why() -> None:
    origin = S3Origin(bucket="b", endpoint="http://127.0.0.1:9", region="us-east-1")
    with pytest.raises(OriginError) as err:
        origin.get("edgeroll/prod/graph/x.json")
    assert err.value.reason == "denied"
    assert "no S3 credentials" in str(err.value) and "s3://b/edgeroll/prod/graph/x.json" in str(err.value)


@pytest.mark.usefixtures("no_aws_credentials")
def test_the_default_chain_supplies_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a workload identity webhook or the operator's edge Secret provides, boto3 picks up by itself."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    origin = S3Origin(bucket="b", endpoint="http://127.0.0.1:9", region="us-east-1")
    creds = origin._s3()._request_signer._credentials  # what boto3 resolved (no public accessor)
    assert creds is not None and creds.access_key == "from-the-chain"
