"""The house's layers (docs/architecture.md), checked on the code as it stands."""

from __future__ import annotations

import re

import pytest
from importlinter.cli import lint_imports

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)


def test_the_layers_import_only_downward(capsys: pytest.CaptureFixture[str]) -> None:
    """pyproject.toml's contracts: imports only downward, and in no circle, even for the type checker."""
    status = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert status == 0, capsys.readouterr().out


def test_the_runtime_names_no_feature() -> None:
    """Actors and supervisors know durability and compute only through their hooks."""
    named = re.compile(r"gpu|cupy|persist", re.IGNORECASE)
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "edabus" / "_runtime").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if named.search(line)
    ]
    assert found == []


def test_every_package_has_its_place_in_the_layers() -> None:
    """A new package of edabus's must be placed in the contract, or it would go unchecked."""
    text = (ROOT / "pyproject.toml").read_text()
    packages = sorted(p.parent.name for p in (ROOT / "edabus").glob("_*/__init__.py"))
    modules = sorted(p.stem for p in (ROOT / "edabus").glob("_*.py") if not p.stem.startswith("__"))
    missing = [name for name in (*packages, *modules) if f"edabus.{name}" not in text]
    assert missing == [], "not in [tool.importlinter]"
