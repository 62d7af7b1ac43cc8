"""`edgeroll` when a subcommand's module is not installed (the lab is not in the container image)."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from edgeroll import cli

pytestmark = pytest.mark.unit


@pytest.fixture
def without_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import` raise ModuleNotFoundError, as an absent package does.
    monkeypatch.setitem(sys.modules, "edgeroll.lab", None)
    monkeypatch.setitem(sys.modules, "edgeroll.lab.cli", None)


@pytest.mark.parametrize("argv", [["lab", "up"], ["lab", "--help"], ["lab"]])
@pytest.mark.usefixtures("without_lab")
def test_missing_lab_is_one_clear_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "edgeroll lab: the lab is a development tool and is not installed in this image"
        " (run it from a source checkout)\n"
    )


@pytest.mark.usefixtures("without_lab")
def test_other_subcommands_still_work_without_the_lab(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])

    assert exited.value.code == 0
    assert "lab" in capsys.readouterr().out


def test_a_missing_dependency_of_a_subcommand_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str, package: str | None = None) -> ModuleType:
        raise ModuleNotFoundError("No module named 'boto3'", name="boto3")

    monkeypatch.setattr(importlib, "import_module", import_module)

    with pytest.raises(ModuleNotFoundError, match="boto3"):
        cli.main(["lab", "up"])
