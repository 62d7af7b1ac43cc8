"""The admission URL allow-list: prefixes match by parsed parts, https unless the prefix says http,
and nothing at all without a prefix."""

from __future__ import annotations

import argparse

import pytest

from edgeroll.admission.policy import PrefixError, admission_url_problem, parse_prefix
from edgeroll.operator_main import add_arguments, load_settings
from edgeroll.settings import SettingsError, settings_from_env

pytestmark = pytest.mark.unit

ENV = {"EDGEROLL_S3_BUCKET": "b"}
PREFIXES = (parse_prefix("https://adm.example.com/edgeroll"), parse_prefix("http://127.0.0.1:8099/"))


@pytest.mark.parametrize(
    "url",
    [
        "https://adm.example.com/edgeroll",
        "https://adm.example.com/edgeroll/",
        "https://ADM.example.com:443/edgeroll/validate?team=a",
        "http://127.0.0.1:8099/admit",
    ],
)
def test_urls_under_a_prefix_are_allowed(url: str) -> None:
    assert admission_url_problem(url, PREFIXES) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://adm.example.com.evil.net/edgeroll/", "is not under an allowed"),
        ("https://adm.example.com@evil.net/edgeroll/", "carries credentials"),
        ("https://user:pw@adm.example.com/edgeroll/", "carries credentials"),
        ("https://adm.example.com/edgerollx", "is not under an allowed"),
        ("https://adm.example.com:8443/edgeroll/", "is not under an allowed"),
        ("https://adm.example.com/edgeroll/../admin", "path segment"),
        ("https://adm.example.com/edgeroll/%2E%2E/admin", "path segment"),
        ("http://adm.example.com/edgeroll/", "is not under an allowed"),
        ("https://127.0.0.1:8099/admit", "is not under an allowed"),  # scheme must be the prefix's
        ("http://169.254.169.254/latest/meta-data/", "is not under an allowed"),
        ("ftp://adm.example.com/edgeroll/", "not an http or https URL"),
        ("https://adm.example.com/edgeroll/#x", "fragment"),
    ],
)
def test_other_urls_are_refused_naming_the_field_and_flag(url: str, says: str) -> None:
    problem = admission_url_problem(url, PREFIXES)
    assert problem is not None and problem.startswith(f"spec.admission.webhook.url: {url!r}")
    assert says in problem
    assert "--admission-url-prefix" in problem and "https://adm.example.com/edgeroll/" in problem


def test_http_is_refused_when_no_prefix_allows_it() -> None:
    problem = admission_url_problem("http://adm.example.com/edgeroll/", PREFIXES[:1])
    assert problem is not None and "plain http; only https is allowed" in problem


def test_no_prefix_refuses_every_url() -> None:
    problem = admission_url_problem("https://adm.example.com/edgeroll/", ())
    assert problem is not None and "(none: admission webhooks are off)" in problem


@pytest.mark.parametrize(
    "raw", ["adm.example.com", "https://", "https://a@b/", "https://b/?q=1", "https://b/#f", "https://b:x/"]
)
def test_bad_prefixes_are_refused(raw: str) -> None:
    with pytest.raises(PrefixError, match="admission URL prefix"):
        parse_prefix(raw)


def test_prefixes_from_environment_and_flags() -> None:
    assert settings_from_env(ENV).admission_url_prefixes == ()
    env = {**ENV, "EDGEROLL_ADMISSION_URL_PREFIXES": " https://a.example/x , ,http://127.0.0.1:1/"}
    got = settings_from_env(env).admission_url_prefixes
    assert [str(p) for p in got] == ["https://a.example/x/", "http://127.0.0.1:1/"]
    with pytest.raises(SettingsError, match="EDGEROLL_ADMISSION_URL_PREFIXES"):
        settings_from_env({**ENV, "EDGEROLL_ADMISSION_URL_PREFIXES": "a.example"})
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--admission-url-prefix", "https://a.example/", "--admission-url-prefix", "https://b.example/"]
    )
    settings = load_settings(args, ENV)
    assert [str(p) for p in settings.admission_url_prefixes] == ["https://a.example/", "https://b.example/"]
    assert settings.admission_timeout_seconds == 10.0
