"""The repository stands alone: nothing in it cites a file outside it, and every link in its docs resolves."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

# Notes that exist only beside a developer's checkout: a reader of the project has none of them.
OUTSIDE = ("ZENOH" + "_NOTES", "STYLE" + ".md", "DESIGN" + ".md", "../" + "shared")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


_DIRS = ("edabus", "tests", "examples", "benchmarks", "docs", "zenoh-config", ".ci")


def _tracked(*suffixes: str) -> list[Path]:
    """The project's own files with these endings: its top level and its source folders (no venv, no caches)."""
    files = [path for path in ROOT.iterdir() if path.is_file()]
    files += [path for folder in _DIRS for path in (ROOT / folder).rglob("*") if path.is_file()]
    return [path for path in files if path.name.endswith(suffixes) and "__pycache__" not in path.parts]


def test_no_file_cites_notes_outside_the_repository() -> None:
    """Code, docs and configuration name no file that lives outside the repository."""
    cited = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in _tracked(".py", ".md", ".toml", ".json5", ".cfg", ".txt", "run")
        for word in OUTSIDE
        if word in path.read_text(errors="replace")
    ]
    assert not cited


def test_every_relative_link_in_the_docs_resolves() -> None:
    """A Markdown link to a file of the repository points at one that exists."""
    broken = []
    for doc in _tracked(".md"):
        for target in _LINK.findall(doc.read_text()):
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken
