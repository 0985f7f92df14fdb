"""The ``edabus`` command's argument types, and the text of the errors it prints."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from pathlib import Path

from edabus._transport._config import DEFAULT_ROUTER_ENDPOINT

from ._certs import APP_NAME

__all__ = [
    "MAX_TIMEOUT",
    "UsageError",
    "app_name",
    "config_file",
    "days",
    "endpoint",
    "gpus",
    "log_options",
    "plain",
    "port",
    "seconds",
    "version",
]

MAX_TIMEOUT = 86_400.0  # a day: any longer wait is a typo (and Zenoh refuses durations past 2**64 s)

# Zenoh's errors end with the Rust source line that raised them (" at /root/.cargo/...rs:615."),
# and a refused json5 value comes wrapped in its Debug form: the user needs the message alone.
_RUST_SOURCE = re.compile(r"\s+at /\S+?\.rs:\d+\.?")
_JSON5_MESSAGE = re.compile(
    r'(Json5Err\()?Message \{ msg: "(.*?)", '
    r"location: (?:Some\(Location \{ line: (\d+), column: (\d+) \}\)|None) \}(?(1)\))"
)


class UsageError(Exception):
    """Bad input on the command line: printed, exit status 2."""


def app_name(text: str) -> str:
    """An app name for `edabus certs`: one key chunk."""
    if not APP_NAME.fullmatch(text):
        msg = f"{text!r}: an app name is letters, digits, '_', '.' and '-' (its keys live under NAME/**)"
        raise argparse.ArgumentTypeError(msg)
    return text


def port(text: str) -> int:
    """A TCP port, 1 to 65535."""
    if not (text.isdigit() and 0 < int(text) <= 65535):  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


def days(text: str) -> int:
    """A certificate's lifetime in days, 1 to 36500."""
    if not (text.isdigit() and 0 < int(text) <= 36500):  # noqa: PLR2004
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of days from 1 to 36500")
    return int(text)


def gpus(text: str | None) -> list[int] | None:
    """``--gpus``: device numbers such as ``0,1`` (``""``: none; None: what cupy finds)."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--gpus takes device numbers such as 0,1 (got {text!r})") from None


def plain(text: str) -> str:
    """A Zenoh error's text without Rust source paths or Debug wrappers."""
    text = _RUST_SOURCE.sub("", text)
    return _JSON5_MESSAGE.sub(lambda m: m[2] + (f" (line {m[3]}, column {m[4]})" if m[3] else ""), text)


def seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0 and at most `MAX_TIMEOUT` (a day)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:  # also refuses nan and inf
        msg = f"{text!r}: give seconds above 0 and at most {MAX_TIMEOUT:g} (a day)"
        raise argparse.ArgumentTypeError(msg)
    return value


_PORTED = ("tcp", "udp", "tls", "quic", "ws")  # protocols whose address is HOST:PORT


def endpoint(text: str) -> str:
    """An argparse type: a Zenoh endpoint, PROTOCOL/ADDRESS (HOST:PORT for tcp, udp, tls, quic, ws)."""
    protocol, slash, address = text.partition("/")
    locator = re.split(r"[?#]", address, maxsplit=1)[0]
    if not slash or not protocol or not locator:
        msg = f"{text!r} is not an endpoint: write PROTOCOL/ADDRESS, e.g. {DEFAULT_ROUTER_ENDPOINT}"
        raise argparse.ArgumentTypeError(msg)
    if protocol in _PORTED:
        host, colon, port = locator.rpartition(":")
        if not colon or not host or not (port.isdigit() and len(port) <= 5 and int(port) <= 65535):  # noqa: PLR2004
            msg = f"{text!r}: {protocol} takes HOST:PORT, a port from 0 to 65535 (e.g. {DEFAULT_ROUTER_ENDPOINT})"
            raise argparse.ArgumentTypeError(msg)
    return text


def config_file(text: str) -> str:
    """An argparse type: a file that exists."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def version() -> str:
    """What ``edabus --version`` prints: edabus's version and Zenoh's."""
    try:
        ours, zenohs = importlib.metadata.version("edabus"), importlib.metadata.version("eclipse-zenoh")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "edabus (not installed)"
    return f"edabus {ours} (eclipse-zenoh {zenohs})"


def log_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """--log-json and --log-level, before the subcommand or after it (there, unset unless given)."""
    p.add_argument(
        "--log-json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="log JSON lines instead of the console renderer",
    )
    p.add_argument(
        "--log-level",
        default="info" if top else argparse.SUPPRESS,
        choices=["debug", "info", "warning", "error"],
        help="the lowest level logged (default info)",
    )
