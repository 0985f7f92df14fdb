"""README's two opening commands are the ones CI and newcomers run."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run's command line is README's second command, character for character."""
    demo, tests = _commands()
    assert "edabus demo" in demo
    assert "pytest" in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines
