"""The ``edabus`` command: router, run, publish, request, tail, status, certs, demo."""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import importlib.util
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import structlog
import zenoh

from edabus._cluster._status import gather_status, render_json, render_table
from edabus._exceptions import DuplicateNodeError, EdabusError, RemoteError, Undelivered
from edabus._host._app import App
from edabus._host._connect import connect
from edabus._host._node import Node
from edabus._logging import configure_logging
from edabus._model._wire import PREFIX, encode_meta
from edabus._transport._bus import Bus
from edabus._transport._config import DEFAULT_ROUTER_ENDPOINT, make_config

from ._args import (
    MAX_TIMEOUT,
    UsageError,
    app_name,
    config_file,
    days,
    endpoint,
    gpus,
    log_options,
    plain,
    port,
    seconds,
    version,
)
from ._certs import CertsError, make_closed_bus
from ._lookup import prepare
from ._tail import PUT, Tap, as_json, dead_letter_line, line

__all__ = ["main"]

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class CommandFailed(Exception):
    """The command could not do its work (a port in use, a refused configuration): printed, exit status 1."""


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)  # noqa: T201 - the CLI talks to its user


def _stdout(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the CLI's output


Command = Callable[[argparse.Namespace], Awaitable[int]]
StoppableCommand = Callable[[argparse.Namespace, anyio.Event], Awaitable[int]]


def _until_signal(command: StoppableCommand) -> Command:
    """Give a long-lived command an event that SIGINT or SIGTERM sets; it stops gracefully on it.

    The signal receiver is installed before the command starts, so a signal that
    arrives while a session is still opening is not lost to the default handler.
    """

    @functools.wraps(command)
    async def run(args: argparse.Namespace) -> int:
        stop = anyio.Event()
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    async for signum in signals:
                        log.info("cli.signal", signal=signal.Signals(signum).name)
                        stop.set()

                tg.start_soon(watch)
                status = await command(args, stop)
                tg.cancel_scope.cancel()
        return status

    return run


def _open_bus(args: argparse.Namespace) -> AbstractAsyncContextManager[Bus]:
    """The bus the command line names (``--connect``, ``--config``)."""
    return connect(args.connect or None, config=args.config)


# -- router -----------------------------------------------------------------------------------


@_until_signal
async def _cmd_router(args: argparse.Namespace, stop: anyio.Event) -> int:
    listen = args.listen or ([] if args.config else [DEFAULT_ROUTER_ENDPOINT])
    try:
        cfg = make_config(listen=listen or None, config=args.config, mode="router", connect=args.connect or None)
        session = zenoh.open(cfg)
    except zenoh.ZError as exc:  # the port is taken, the address is not ours, the config file is refused
        raise CommandFailed(f"cannot start the router: {plain(str(exc))}") from None
    try:
        log.info("router.started", listen=listen, zid=str(session.zid()))
        await stop.wait()
    finally:
        session.close()
        log.info("router.stopped")
    return EXIT_OK


# -- run ----------------------------------------------------------------------------------------


def load_app(target: str) -> App:
    """Load ``module:attr`` or ``path/to/file.py:attr`` (attr defaults to ``app``)."""
    spec, _, attr = target.partition(":")
    attr = attr or "app"
    if spec.endswith(".py") or os.sep in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UsageError(f"no such file: {spec}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        if module_spec is None or module_spec.loader is None:
            raise UsageError(f"cannot import {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules in the working directory
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise UsageError(f"cannot import {spec!r}: {exc}") from exc
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise UsageError(f"{target}: {attr!r} is not an edabus.App (got {type(app).__name__})")
    return app


@_until_signal
async def _cmd_run(args: argparse.Namespace, stop: anyio.Event) -> int:
    apps = [load_app(target) for target in args.target]
    async with connect(
        args.connect or None, listen=args.listen or None, config=args.config, node_id=args.node_id
    ) as bus:
        try:
            async with Node(bus, apps, gpus=gpus(args.gpus)):
                # What start-up built (modules, the apps, the session) lives as long as the
                # process: keep the collector's full passes off it (about 5% of a busy node).
                gc.collect()
                gc.freeze()
                log.info("run.ready", frozen_objects=gc.get_freeze_count())
                await stop.wait()
        except DuplicateNodeError:  # raised before the node declared anything
            msg = f"node id {bus.node_id!r} is already live on this bus; give each node its own --node-id"
            raise UsageError(msg) from None
    return EXIT_OK


# -- publish / request --------------------------------------------------------------------------


async def _cmd_publish(args: argparse.Namespace) -> int:
    async with _open_bus(args) as bus:
        payload, entry = await prepare(bus, args.key, args.json, args.timeout)
        if entry is not None and entry.reliable:  # at least once: kept and resent until its owner acknowledges it
            await bus.outbox.send(args.key, payload, entry.type, "")
            try:
                await bus.wait_delivered(args.timeout)
            except Undelivered:  # exit 1, saying so; closing the bus need not wait for it again
                bus.drain_timeout = 0
                raise
        else:
            bus._put(args.key, payload, encode_meta(bus._next_meta(entry.type if entry else "")))
    if entry is None:
        _stderr(
            f"warning: no live group serves {args.key!r} (no live node lists its type); "
            "the message went out with no listener"
        )
        return EXIT_FAIL
    return EXIT_OK


async def _cmd_request(args: argparse.Namespace) -> int:
    async with _open_bus(args) as bus:
        payload, entry = await prepare(bus, args.key, args.json, args.timeout)
        type_name = entry.type if entry else ""
        try:
            reply, _meta = await bus.request_raw(args.key, payload, type_name=type_name, timeout=args.timeout)
        except RemoteError as exc:
            _stderr(f"error: {exc}")
            return EXIT_FAIL
    _stdout(as_json(reply))
    return EXIT_OK


# -- tail ---------------------------------------------------------------------------------------


@_until_signal
async def _cmd_tail(args: argparse.Namespace, stop: anyio.Event) -> int:
    key_expr = f"{PREFIX}/deadletter/**" if args.dead_letters else (args.key_expr or "**")
    if args.requests and key_expr.startswith(PREFIX):
        raise UsageError(f"--requests watches user keys, not {key_expr!r} (queries there are edabus's own)")
    async with _open_bus(args) as bus:
        tap = Tap(bus, key_expr, queries=args.requests)
        entries = bus._router.entries  # the live groups' catalogs, kept current by the bus
        try:
            log.info("tail.started", key_expr=key_expr, requests=args.requests)
            async with anyio.create_task_group() as tg:

                async def close_on_stop() -> None:
                    await stop.wait()
                    tap.close()  # the batches end after what is already queued

                tg.start_soon(close_on_stop)
                while batch := await tap.receive_batch():
                    lines = [
                        (args.dead_letters and kind == PUT and dead_letter_line(envelope))
                        or line(kind, envelope, entries)
                        for kind, envelope in batch
                    ]
                    _stdout("\n".join(lines))
                tg.cancel_scope.cancel()
        finally:
            tap.close()
    return EXIT_OK


# -- status -------------------------------------------------------------------------------------


async def _cmd_status(args: argparse.Namespace) -> int:
    async with _open_bus(args) as bus:
        status = await gather_status(bus, timeout=args.timeout, actors=args.actors)
    if not status.nodes:
        hint = "" if args.connect or args.config else " (give --connect ENDPOINT to reach a router)"
        _stderr(f"error: no live edabus node on the bus{hint}")
        return EXIT_FAIL
    _stdout(render_json(status) if args.json else render_table(status))
    return EXIT_OK


async def _cmd_certs(args: argparse.Namespace) -> int:
    try:
        written = make_closed_bus(
            args.dir, args.app, host=args.router_host, port=args.router_port, days=args.days, force=args.force
        )
    except CertsError as exc:
        raise CommandFailed(str(exc)) from None
    _stdout("\n".join(str(path) for path in written))
    _stderr(f"start the router: edabus router --config {written[0].parent / 'router.json5'}")
    return EXIT_OK


async def _cmd_demo(_args: argparse.Namespace) -> int:
    from ._demo import run_demo  # noqa: PLC0415 - imports the example only when asked

    return await run_demo()


# -- main ---------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edabus", description="Python actors on a Zenoh bus.")
    parser.add_argument("--version", action="version", version=version())
    log_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, text: str, handler: Callable[[argparse.Namespace], Awaitable[int]]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        log_options(p, top=False)
        p.set_defaults(handler=handler)
        return p

    def bus_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--connect",
            action="append",
            type=endpoint,
            metavar="ENDPOINT",
            help="router endpoint, e.g. tcp/127.0.0.1:7447 (repeatable)",
        )
        p.add_argument(
            "--config", type=config_file, metavar="FILE", help="a Zenoh json5 config file (multicast stays off)"
        )

    p = add("router", "run a Zenoh router (multicast scouting off)", _cmd_router)
    p.add_argument(
        "--listen", action="append", type=endpoint, metavar="ENDPOINT", help=f"default {DEFAULT_ROUTER_ENDPOINT}"
    )
    bus_options(p)

    p = add("run", "host apps until interrupted", _cmd_run)
    p.add_argument("target", nargs="+", help="MODULE:APP or path/to/file.py:APP (APP defaults to app)")
    p.add_argument("--listen", action="append", type=endpoint, metavar="ENDPOINT", help="let other peers connect here")
    p.add_argument("--node-id", help="this node's id (default: random)")
    p.add_argument("--gpus", help="GPUs this node offers, e.g. 0,1 ('' for none; default: what cupy finds)")
    bus_options(p)

    for name, handler, text, waits in (
        ("publish", _cmd_publish, "publish one message given as JSON", "for the nodes' catalogs and the validation"),
        ("request", _cmd_request, "send a request, print the reply as JSON", "for each step and for the reply"),
    ):
        p = add(name, text, handler)
        p.add_argument("key", help="the concrete key, e.g. bank/account/a1/deposit")
        p.add_argument("json", help="the fields as a JSON object, e.g. '{\"amount\": 5}'")
        p.add_argument(
            "--timeout",
            type=seconds,
            default=5.0,
            metavar="S",
            help=f"seconds to wait {waits}: finding the node that hosts KEY's type, which checks the JSON "
            f"(default 5; above 0, at most {MAX_TIMEOUT:g})",
        )
        bus_options(p)

    p = add("tail", "print each message on a key expression as a JSON line", _cmd_tail)
    p.add_argument("key_expr", nargs="?", help="default ** (every user key)")
    p.add_argument(
        "--requests",
        action="store_true",
        help="also show requests and reliable messages (Zenoh queries); see docs/cli.md for what it costs",
    )
    p.add_argument("--dead-letters", action="store_true", help="show dead letters instead")
    bus_options(p)

    p = add("status", "list the live nodes, the groups each hosts, and their counters", _cmd_status)
    p.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    p.add_argument(
        "--actors",
        action="store_true",
        help="also list every live actor: its group, its key and the node that holds it",
    )
    p.add_argument(
        "--timeout",
        type=seconds,
        default=2.0,
        metavar="S",
        help="seconds to wait for the nodes' replies (default 2)",
    )
    bus_options(p)

    p = add("certs", "write a CA, certificates and configs for a closed bus (mutual TLS, ACL)", _cmd_certs)
    p.add_argument("dir", metavar="DIR", help="where to write them (created if missing)")
    p.add_argument(
        "--app",
        action="append",
        required=True,
        type=app_name,
        metavar="NAME",
        help="an app whose keys live under NAME/**: a node and a publisher certificate for it (repeatable)",
    )
    p.add_argument("--router-host", default="127.0.0.1", help="the address clients dial (default 127.0.0.1)")
    p.add_argument("--router-port", type=port, default=7447, help="the router's TLS port (default 7447)")
    p.add_argument("--days", type=days, default=365, help="how long the certificates are valid (default 365)")
    p.add_argument("--force", action="store_true", help="replace a CA already in DIR, and every certificate")

    add("demo", "run the bank example in one process", _cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edabus`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    configure_logging(json=args.log_json, level=args.log_level)
    try:
        status: int = anyio.run(args.handler, args)
    except BaseException as exc:  # unwrapped below, re-raised unless ours
        error = _unwrap(exc)
        if isinstance(error, UsageError):
            _stderr(f"error: {error}")
            return EXIT_USAGE
        if isinstance(error, EdabusError | CommandFailed | zenoh.ZError):
            _stderr(f"error: {plain(str(error))}")
            return EXIT_FAIL
        if isinstance(error, KeyboardInterrupt):
            return EXIT_OK
        raise
    return status


def _unwrap(exc: BaseException) -> BaseException:
    """The one exception inside task-group wrappers, if there is exactly one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
