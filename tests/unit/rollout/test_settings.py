"""Operator settings: required S3 bucket, edge credentials fallback, flags over environment."""

from __future__ import annotations

import argparse

import pytest

from edgeroll.operator_main import add_arguments, load_settings
from edgeroll.settings import SettingsError, settings_from_env

pytestmark = pytest.mark.unit

ENV = {"EDGEROLL_S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}


def test_defaults_and_fallbacks() -> None:
    s = settings_from_env(
        {**ENV, "EDGEROLL_S3_ENDPOINT": "http://127.0.0.1:8333", "AWS_DEFAULT_REGION": "eu-1"}
    )
    assert s.s3.bucket == "b" and s.s3.prefix == "edgeroll" and s.s3.region == "eu-1"
    assert s.edge_s3.access_key_id == "id" and s.edge_s3.endpoint == "http://127.0.0.1:8333"
    assert s.cache_image == "ghcr.io/edgeroll/edgeroll:0.1.0"
    assert (s.resync_seconds, s.progress_seconds, s.probe_seconds) == (60.0, 2.0, 15.0)
    assert "secret" not in repr(s)


def test_read_only_edge_credentials_win() -> None:
    s = settings_from_env(
        {**ENV, "EDGEROLL_EDGE_S3_ACCESS_KEY_ID": "ro", "EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY": "x"}
    )
    assert (s.edge_s3.access_key_id, s.edge_s3.secret_access_key) == ("ro", "x")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "EDGEROLL_S3_BUCKET"),
        ({"EDGEROLL_S3_BUCKET": "b"}, "edge S3 credentials"),
        ({**ENV, "EDGEROLL_RESYNC_SECONDS": "soon"}, "EDGEROLL_RESYNC_SECONDS"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings_from_env(env)


def test_flags_override_the_environment() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["-n", "prod", "--s3-prefix", "p", "--resync-seconds", "5"])
    s = load_settings(args, {**ENV, "EDGEROLL_S3_PREFIX": "env", "EDGEROLL_RESYNC_SECONDS": "99"})
    assert s.s3.prefix == "p" and s.resync_seconds == 5.0 and args.namespace == ["prod"]
