"""What edabus logs in a program that uses it: the host's choice, not the library's.

Each test runs a small program in a fresh interpreter (its own logging set-up,
a working directory of its own) that hosts an app on an isolated peer bus,
publishes a message whose handler raises (it is dead-lettered) and makes a
request. The program prints its own lines to stdout; what edabus logged is
judged on the program's stdout and stderr.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

PROGRAM_S = 45.0

APP = textwrap.dedent(
    """
    import anyio
    import edabus


    class Fail(edabus.Message, key="logtest/{name}/fail"):
        name: str


    class Ping(edabus.Message, key="logtest/{name}/ping"):
        name: str


    class Pong(edabus.Message):
        name: str


    class Worker(edabus.Actor):
        def __init__(self, key: str) -> None:
            self.key = key

        @edabus.handler
        async def fail(self, msg: Fail) -> None:
            raise ValueError("no such account")

        @edabus.handler
        async def ping(self, msg: Ping) -> Pong:
            return Pong(name=msg.name)


    app = edabus.App("logtest")
    app.keyed(Worker, key="name")


    async def main() -> None:
        async with edabus.connect() as bus, edabus.Node(bus, [app]) as node:
            print("program: started")
            await bus.publish(Fail(name="a"))
            with anyio.fail_after(20):  # the dead letter is counted once the failure is handled and logged
                while node.supervisor("Worker").statistics().dead_letters < 1:
                    await anyio.sleep(0.01)
            pong = await bus.request(Ping(name="a"), reply_type=Pong, timeout=10)
            print("program: pong", pong.name)
        print("program: done")
    """
)

OWN_OUTPUT = "program: started\nprogram: pong a\nprogram: done\n"


def run_program(tmp_path: Path, setup: str = "") -> subprocess.CompletedProcess[str]:
    """Run the app program, ``setup`` (the host's logging set-up) first; its exit status and output."""
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(setup) + APP + "\nanyio.run(main)\n")
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=PROGRAM_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_an_unconfigured_host_gets_its_own_stdout_and_only_warnings_on_stderr(tmp_path: Path) -> None:
    """Nothing configured: stdout is the program's alone; stderr has the handler error, one line, no chatter."""
    result = run_program(tmp_path)
    assert result.stdout == OWN_OUTPUT
    lines = result.stderr.splitlines()
    failed = [line for line in lines if "no such account" in line]
    assert len(failed) == 1, result.stderr  # one line per failure: not repeated as a dead letter
    assert "actor.failed" in failed[0]
    assert "ValueError" in failed[0]
    assert "Traceback" not in result.stderr
    for chatter in ("node.started", "node.stopped", "actor.spawned", "actor.stopped", "bus.opened"):
        assert chatter not in result.stderr


def test_the_edabus_logger_at_debug_with_a_handler_shows_everything(tmp_path: Path) -> None:
    """`logging.getLogger("edabus")` at DEBUG with a handler: lifecycle events and the traceback, on that handler."""
    # Only edabus's records reach this handler: each has `event` and `fields`.
    setup = """
        import logging
        import sys

        edabus_log = logging.getLogger("edabus")
        edabus_log.setLevel(logging.DEBUG)
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(levelname)s %(name)s %(message)s | %(funcName)s %(event)s %(fields)s"
        handler.setFormatter(logging.Formatter(fmt))
        edabus_log.addHandler(handler)
    """
    result = run_program(tmp_path, setup)
    assert result.stdout == OWN_OUTPUT
    for event in ("bus.opened", "node.started", "actor.spawned", "actor.failed", "actor.stopped", "node.stopped"):
        assert event in result.stderr, result.stderr
    assert "DEBUG edabus._runtime._supervisor actor.spawned key='a' app='logtest'" in result.stderr
    # The record names the edabus function that logged, and carries the event and its fields apart.
    assert "| start_instance actor.spawned {'key': 'a', 'app': 'logtest'," in result.stderr
    assert "WARNING edabus._runtime._supervisor actor.failed" in result.stderr
    assert "Traceback" in result.stderr  # at debug, the handler's traceback
    assert 'raise ValueError("no such account")' in result.stderr


def test_a_host_s_basic_config_at_info_shows_node_events_not_actor_chatter(tmp_path: Path) -> None:
    """`logging.basicConfig(level=INFO)`: the node's start and stop, not each actor's."""
    setup = """
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    """
    result = run_program(tmp_path, setup)
    assert result.stdout == OWN_OUTPUT
    assert "INFO:edabus._host._node:node.started" in result.stderr
    assert "INFO:edabus._host._node:node.stopped" in result.stderr
    assert "WARNING:edabus._runtime._supervisor:actor.failed" in result.stderr
    for chatter in ("actor.spawned", "actor.stopped", "bus.opened", "Traceback"):
        assert chatter not in result.stderr


def test_a_host_that_configured_structlog_gets_edabus_events_through_its_configuration(tmp_path: Path) -> None:
    """Structlog configured by the host: edabus's events go through the host's processors and level."""
    setup = """
        import logging
        import sys

        import structlog

        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        )
    """
    result = run_program(tmp_path, setup)
    assert result.stdout == OWN_OUTPUT
    assert '"event": "node.started"' in result.stderr
    assert '"event": "actor.failed"' in result.stderr
    assert "actor.spawned" not in result.stderr
