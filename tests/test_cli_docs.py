"""Every ``edabus`` command line README.md and docs/cli.md show, run as written against one bus with three apps.

The bus is a router with a bank, a pipeline and a vault node (tests/conftest.py's
``three_apps``). Command lines come from the ```sh and ```console blocks of the
two files (README's first two blocks, install commands, aside); each runs in
order, per block, with the documented router endpoint ``tcp/127.0.0.1:7447``
replaced by the test's:

- ``edabus router ...`` is the fixture's router and is not started again;
- ``edabus run ... &`` starts a node and waits until its app's group is live;
- ``edabus tail ... &`` starts a tail and waits until it prints;
- ``export NAME=VALUE`` sets the environment of later lines (``$PWD`` is a
  temporary directory, so state files land there);
- any other line runs to completion and must exit 0; a trailing ``# {...}``
  comment is the JSON it must print;
- in a ```console block, the lines after a ``$`` command are its documented
  output: a table's header (a line that starts with ``NODE``) and the lines
  with no figures in them (legends) must be in the command's own output, as
  written (spacing aside).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster._nodes import NodeProcess
from tests.conftest import ROOT, Processes
from tests.test_cli import Lines, raw_session

DOCUMENTED_ENDPOINT = "tcp/127.0.0.1:7447"
FILES = ("README.md", "docs/cli.md")
_BLOCK = re.compile(r"^```(sh|console)\n(.*?)^```", re.DOTALL | re.MULTILINE)


@dataclass
class Line:
    command: str  # the shell text, comment and trailing '&' removed
    background: bool
    expect_json: object | None  # what a trailing `# {...}` comment says it prints
    expect_output: list[str]  # in a console block: the documented output


def _split_comment(text: str) -> tuple[str, str]:
    """The command and its trailing comment (a '#' after whitespace, outside quotes)."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def _lines(block: str, kind: str) -> list[Line]:
    lines: list[Line] = []
    raw = block.splitlines()
    for index, written in enumerate(raw):
        if kind == "console" and not written.startswith("$ "):
            continue
        command, comment = _split_comment(written.removeprefix("$ ") if kind == "console" else written)
        if not command:
            continue
        background = command.endswith("&")
        command = command.removesuffix("&").rstrip()
        expect_json = None
        if comment.startswith(("{", "[")):
            expect_json = json.loads(comment)
        output: list[str] = []
        if kind == "console":
            for after in raw[index + 1 :]:
                if after.startswith("$ "):
                    break
                output.append(after)
        lines.append(Line(command, background, expect_json, output))
    return lines


def _blocks() -> list[tuple[str, list[Line]]]:
    found = []
    for name in FILES:
        text = (ROOT / name).read_text()
        for number, match in enumerate(_BLOCK.finditer(text)):
            if name == "README.md" and number < 2:  # the install-and-run commands: CI runs those
                continue
            kind, body = match.groups()
            lines = _lines(body, kind)
            if any(line.command.startswith(("edabus ", "python examples/")) for line in lines):
                at = text.count("\n", 0, match.start()) + 1
                found.append((f"{name}:{at}", lines))
    return found


BLOCKS = _blocks()


def test_the_documents_show_command_lines() -> None:
    """The parser finds the walkthroughs (a parser that found nothing would pass everything)."""
    names = [name for name, _ in BLOCKS]
    assert any(name.startswith("README.md") for name in names)
    assert any(name.startswith("docs/cli.md") for name in names)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """``$PWD`` of the command lines: where the fixture's vault keeps its state too, as one machine's nodes do."""
    return tmp_path


@pytest.mark.parametrize(("where", "lines"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_each_documented_command_line_runs_as_written(
    processes: Processes, three_apps: str, workdir: Path, where: str, lines: list[Line]
) -> None:
    """Each line of the block exits 0 (or comes up, if it runs in the background) and prints what it says."""
    env: dict[str, str] = {}
    started = 0
    for line in lines:
        text = line.command.replace(DOCUMENTED_ENDPOINT, three_apps).replace("$PWD", str(workdir))
        if text.startswith("export "):
            name, _, value = text.removeprefix("export ").partition("=")
            env[name] = value
            continue
        argv = shlex.split(text)
        if argv[:2] == ["edabus", "router"]:
            continue  # the fixture's router stands for it
        python_args = ["-m", "edabus", *argv[1:]] if argv[0] == "edabus" else argv[1:]
        if argv[0] not in ("edabus", "python"):
            pytest.fail(f"{where}: a line this test cannot run: {line.command!r}")
        if line.background and argv[1] == "run":
            target = argv[2]
            started += 1
            node = NodeProcess(processes, three_apps, workdir / f"node-{started}.log", target=target, env=env)
            node.wait_until_up(target.split(".")[-1].split(":")[0])
            continue
        if line.background and argv[1] == "tail":
            tail = processes.start(python_args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            with raw_session(three_apps) as session:
                Lines(tail).wait_subscribed(session, "bank/account/tail-probe/deposit")
            continue
        assert not line.background, f"{where}: a background line this test does not know: {line.command!r}"
        result = processes.run(python_args, env=env, timeout=60)
        stdout, stderr = result.stdout.decode(), result.stderr.decode(errors="replace")
        assert result.returncode == 0, f"{where}: {line.command!r} exited {result.returncode}:\n{stderr[-2000:]}"
        if line.expect_json is not None:
            assert json.loads(stdout) == line.expect_json, f"{where}: {line.command!r} printed {stdout!r}"
        shown = {_spaced(out) for out in stdout.splitlines()}
        fixed = [_spaced(out) for out in line.expect_output if out.startswith("NODE ") or not re.search(r"\d", out)]
        missing = [out for out in fixed if out and out not in shown]
        assert not missing, f"{where}: {line.command!r} did not print {missing}; it printed:\n{stdout}"


def _spaced(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
