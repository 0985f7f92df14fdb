"""Every ```python block in README.md and docs/*.md runs as written.

Each block runs alone, as a script in a fresh interpreter whose working
directory is a new temporary directory (so a store's file lands there, not in
the repository), and must exit 0 within `BLOCK_TIMEOUT_S`. A block that defines
a top-level function must also call or pass it somewhere: a ``main()`` that is
never run would otherwise pass without running anything.

A block that cannot run alone (it continues an earlier block, shows a
signature, or needs a router or a second process) says so with a marker line
directly above its opening fence::

    <!-- fragment: continues the block above -->

The text after ``fragment`` is free (a reason, for the reader). A fragment is
only compiled, with top-level ``await`` allowed, so its syntax still holds.
Test ids name the file and the line of the opening fence, e.g. ``README.md:23``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

BLOCK_TIMEOUT_S = 30.0
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = re.compile(r"^<!-- fragment\b.*-->$")


@dataclass(frozen=True)
class Block:
    """One ```python block: where it opens, its code, and whether it is marked a fragment."""

    path: Path
    line: int  # of the opening fence, 1-based
    code: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            i += 1
            while lines[i].strip() != "```":
                i += 1
            fragment = start > 0 and FRAGMENT.match(lines[start - 1].strip()) is not None
            blocks.append(Block(path, start + 1, "\n".join(lines[start + 1 : i]) + "\n", fragment))
        i += 1
    return blocks


BLOCKS = [block for path in DOCS for block in _blocks(path)]
RUN = [pytest.param(b, id=b.id) for b in BLOCKS if not b.fragment]
FRAGMENTS = [pytest.param(b, id=b.id) for b in BLOCKS if b.fragment]


def _uncalled_functions(code: str) -> list[str]:
    """Top-level functions of ``code`` that nothing in it names again (called, or passed to ``anyio.run``)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []  # running it reports the error, with its line
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [name for name in defined if name not in named]


@pytest.mark.parametrize("block", RUN)
def test_block_runs(block: Block, tmp_path: Path) -> None:
    """The block, alone in a fresh interpreter, exits 0 and leaves no function unrun."""
    uncalled = _uncalled_functions(block.code)
    assert not uncalled, f"{block.id} defines {uncalled} but never runs it: run it, or mark the block a fragment"
    script = tmp_path / "block.py"
    script.write_text(block.code)
    result = subprocess.run(  # noqa: S603 - our own interpreter on the docs' own code
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{block.id} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("block", FRAGMENTS)
def test_fragment_compiles(block: Block) -> None:
    """A fragment does not run, but it is still Python (top-level ``await`` allowed)."""
    compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


def test_every_marker_marks_a_python_block() -> None:
    """A fragment marker sits directly above a ```python fence, so none is silently ignored."""
    stray = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if FRAGMENT.match(line.strip()) and (i + 1 >= len(lines) or lines[i + 1].strip() != "```python"):
                stray.append(f"{path.relative_to(ROOT).as_posix()}:{i + 1}")
    assert not stray, f"fragment markers not directly above a ```python fence: {stray}"


def test_readme_blocks_run() -> None:
    """README's snippets are the first code a reader copies: none of them is a fragment."""
    readme = [b for b in BLOCKS if b.path.name == "README.md"]
    assert readme
    assert not [b.id for b in readme if b.fragment]
