"""A secret the cache receives that is not UTF-8 is a named configuration error (exit 2), not a
traceback in a crash loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cache_settings import BASE

from edgeroll.cache.settings import SettingsError, settings_from_env

pytestmark = pytest.mark.unit

NOT_UTF8 = os.fsdecode(b"\xff\xfe" + b"k" * 30)  # how os.environ hands such a value to Python


@pytest.mark.parametrize("var", ["EDGEROLL_SIGNING_KEY", "EDGEROLL_COSMO_TOKEN_SECRET"])
def test_a_value_that_is_not_utf8_names_the_variable(var: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_env({**BASE, var: NOT_UTF8})
    assert str(err.value) == f"{var} is not valid UTF-8 text"


def test_utf8_keys_are_taken_verbatim() -> None:
    key = "schlüssel-with-a-trailing-space "
    assert settings_from_env({**BASE, "EDGEROLL_SIGNING_KEY": key}).signing_key == key.encode()


def test_the_cache_process_exits_2_naming_the_variable(tmp_path: Path) -> None:
    env: dict[bytes, bytes] = {os.fsencode(k): os.fsencode(v) for k, v in BASE.items()}
    env[b"EDGEROLL_SIGNING_KEY"] = b"\xff\xfe" + b"k" * 30
    env[b"PATH"] = os.fsencode(os.environ.get("PATH", "/usr/bin:/bin"))
    env[b"EDGEROLL_STATE_DIR"] = os.fsencode(str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "edgeroll.cli", "cache"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, stderr
    assert "EDGEROLL_SIGNING_KEY is not valid UTF-8 text" in stderr
    assert "Traceback" not in stderr and "kkkk" not in stderr
