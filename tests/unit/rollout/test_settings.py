"""Operator settings: required S3 bucket, the edges' own S3 key (never the operator's), flags over
environment."""

from __future__ import annotations

import argparse

import pytest

from edgeroll.operator_main import add_arguments, load_settings
from edgeroll.settings import MetricsAddress, SettingsError, settings_from_env

pytestmark = pytest.mark.unit

ENV = {"EDGEROLL_S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}


def test_defaults_and_fallbacks() -> None:
    s = settings_from_env(
        {**ENV, "EDGEROLL_S3_ENDPOINT": "http://127.0.0.1:8333", "AWS_DEFAULT_REGION": "eu-1"}
    )
    assert s.s3.bucket == "b" and s.s3.prefix == "edgeroll" and s.s3.region == "eu-1"
    assert s.edge_s3.endpoint == "http://127.0.0.1:8333" and s.edge_s3.region == "eu-1"
    assert s.cache_image == "ghcr.io/edgeroll/edgeroll:0.1.0"
    assert (s.resync_seconds, s.progress_seconds, s.probe_seconds) == (60.0, 2.0, 15.0)
    assert "secret" not in repr(s)


@pytest.mark.parametrize(("raw", "conditional"), [(None, True), ("false", True), ("true", False)])
def test_the_manifest_if_match_is_on_unless_always_read(raw: str | None, conditional: bool) -> None:
    extra = {} if raw is None else {"EDGEROLL_S3_MANIFEST_ALWAYS_READ": raw}
    assert settings_from_env({**ENV, **extra}).s3.manifest_if_match is conditional


def test_read_only_edge_credentials_win() -> None:
    s = settings_from_env(
        {**ENV, "EDGEROLL_EDGE_S3_ACCESS_KEY_ID": "ro", "EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY": "x"}
    )
    assert (s.edge_s3.access_key_id, s.edge_s3.secret_access_key) == ("ro", "x") and s.edge_s3.static
    assert "'x'" not in repr(s) and "'ro'" not in repr(s)


def test_the_edges_never_fall_back_to_the_operators_key() -> None:
    s = settings_from_env(ENV)
    assert s.edge_s3.access_key_id is None and s.edge_s3.secret_access_key is None
    assert not s.edge_s3.static  # workload identity: the caches use their pod's credential chain


def test_no_static_keys_anywhere_is_workload_identity() -> None:
    s = settings_from_env({"EDGEROLL_S3_BUCKET": "b"})
    assert not s.edge_s3.static and not s.allow_shared_edge_key


SHARED = {**ENV, "EDGEROLL_EDGE_S3_ACCESS_KEY_ID": "id", "EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY": "secret"}


def test_the_operators_key_for_the_edges_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_env(SHARED)
    message = str(err.value)
    assert "EDGEROLL_EDGE_S3_ACCESS_KEY_ID equals AWS_ACCESS_KEY_ID" in message
    assert "EDGEROLL_ALLOW_SHARED_EDGE_KEY=true" in message
    assert "'id'" not in message and "secret" not in message  # names, never values


@pytest.mark.parametrize("flag", ["true", "True", "1"])
def test_the_development_flag_allows_the_shared_key(flag: str) -> None:
    s = settings_from_env({**SHARED, "EDGEROLL_ALLOW_SHARED_EDGE_KEY": flag})
    assert s.allow_shared_edge_key and s.edge_s3.access_key_id == "id"


def test_the_development_flag_from_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SettingsError, match="EDGEROLL_ALLOW_SHARED_EDGE_KEY"):
        load_settings(parser.parse_args([]), SHARED)
    s = load_settings(parser.parse_args(["--allow-shared-edge-key"]), SHARED)
    assert s.allow_shared_edge_key
    # Without the flag, the environment decides.
    assert load_settings(parser.parse_args([]), {**SHARED, "EDGEROLL_ALLOW_SHARED_EDGE_KEY": "true"})


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("EDGEROLL_EDGE_S3_ACCESS_KEY_ID", "EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY"),
        ("EDGEROLL_EDGE_S3_SECRET_ACCESS_KEY", "EDGEROLL_EDGE_S3_ACCESS_KEY_ID"),
    ],
)
def test_half_an_edge_key_names_the_missing_half(given: str, missing: str) -> None:
    with pytest.raises(SettingsError, match=f"^{missing} is required with {given}"):
        settings_from_env({**ENV, given: "ro"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, "EDGEROLL_S3_BUCKET"),
        ({**ENV, "EDGEROLL_ALLOW_SHARED_EDGE_KEY": "maybe"}, "EDGEROLL_ALLOW_SHARED_EDGE_KEY must be"),
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


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        (None, MetricsAddress("", 8081)),  # unset: the default, every interface
        (":9000", MetricsAddress("", 9000)),
        ("127.0.0.1:0", MetricsAddress("127.0.0.1", 0)),
        ("[::1]:8081", MetricsAddress("::1", 8081)),
        ("off", None),
        ("", None),  # set but empty: off
    ],
)
def test_metrics_address_from_the_environment(raw: str | None, address: MetricsAddress | None) -> None:
    env = ENV if raw is None else {**ENV, "EDGEROLL_METRICS_ADDR": raw}
    assert settings_from_env(env).metrics_address == address


@pytest.mark.parametrize("raw", ["8081", "localhost", ":http", ":70000", "a b:1"])
def test_a_malformed_metrics_address_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="EDGEROLL_METRICS_ADDR must be"):
        settings_from_env({**ENV, "EDGEROLL_METRICS_ADDR": raw})


def test_the_metrics_flag_overrides_the_environment() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {**ENV, "EDGEROLL_METRICS_ADDR": ":9000"}
    assert load_settings(parser.parse_args(["--metrics-addr", "127.0.0.1:9100"]), env).metrics_address == (
        MetricsAddress("127.0.0.1", 9100)
    )
    assert load_settings(parser.parse_args(["--metrics-addr", "off"]), env).metrics_address is None
    assert load_settings(parser.parse_args([]), env).metrics_address == MetricsAddress("", 9000)
