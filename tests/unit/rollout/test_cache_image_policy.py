"""Which images a RouterConfig may ask for in spec.cache.image, and the operator's flag for it."""

from __future__ import annotations

import argparse

import pytest

from edgeroll.operator_main import add_arguments, load_settings
from edgeroll.rollout.image_policy import allowed_cache_images, cache_image_problem
from edgeroll.settings import DEFAULT_CACHE_IMAGE, SettingsError, settings_from_env

pytestmark = pytest.mark.unit

ENV = {"EDGEROLL_S3_BUCKET": "b", "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
OWN = "ghcr.io/edgeroll/edgeroll:0.1.0"


def test_the_default_image_is_always_allowed_and_first() -> None:
    assert allowed_cache_images(OWN, ()) == (OWN,)
    assert allowed_cache_images(OWN, ("a/b:1", OWN, " a/b:1 ", "")) == (OWN, "a/b:1")


def test_unset_or_listed_images_pass() -> None:
    allowed = allowed_cache_images(OWN, ("registry.internal/cache@sha256:" + "0" * 64,))
    assert cache_image_problem(None, allowed) is None
    assert cache_image_problem(OWN, allowed) is None
    assert cache_image_problem("registry.internal/cache@sha256:" + "0" * 64, allowed) is None


@pytest.mark.parametrize(
    "image",
    [
        "evil.example/cache:latest",
        "ghcr.io/edgeroll/edgeroll:0.1.0-evil",  # exact references only: no prefix match
        "ghcr.io/edgeroll/edgeroll",  # nor a missing tag
        "GHCR.IO/edgeroll/edgeroll:0.1.0",
    ],
)
def test_any_other_image_names_the_field_and_the_allowed_list(image: str) -> None:
    problem = cache_image_problem(image, allowed_cache_images(OWN, ("a/b:1",)))
    assert problem is not None
    assert problem.startswith(f"spec.cache.image: {image!r} is not an allowed cache image")
    assert f"allowed: {OWN}, a/b:1" in problem and "--allowed-cache-image" in problem


def test_settings_read_the_comma_separated_list() -> None:
    assert settings_from_env(ENV).allowed_cache_images == ()
    s = settings_from_env({**ENV, "EDGEROLL_ALLOWED_CACHE_IMAGES": " a/b:1, ,c/d:2 "})
    assert s.allowed_cache_images == ("a/b:1", "c/d:2")
    with pytest.raises(SettingsError, match="EDGEROLL_ALLOWED_CACHE_IMAGES"):
        settings_from_env({**ENV, "EDGEROLL_ALLOWED_CACHE_IMAGES": "a/b:1 c/d:2"})


def test_the_flag_is_repeatable_and_overrides_the_environment() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {**ENV, "EDGEROLL_ALLOWED_CACHE_IMAGES": "from/env:1"}
    s = load_settings(parser.parse_args([]), env)
    assert s.allowed_cache_images == ("from/env:1",) and s.cache_image == DEFAULT_CACHE_IMAGE
    args = parser.parse_args(["--allowed-cache-image", "a/b:1", "--allowed-cache-image", "c/d:2"])
    assert load_settings(args, env).allowed_cache_images == ("a/b:1", "c/d:2")
