"""Zenoh configurations edabus opens sessions with.

Every configuration this module returns has multicast scouting off: edabus
never sends multicast, whatever file or arguments it is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import zenoh

__all__ = ["DEFAULT_ROUTER_ENDPOINT", "make_config"]

DEFAULT_ROUTER_ENDPOINT = "tcp/127.0.0.1:7447"


def _endpoints(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def make_config(
    *,
    connect: str | Sequence[str] | None = None,
    listen: str | Sequence[str] | None = None,
    config: str | Path | None = None,
    mode: str | None = None,
) -> zenoh.Config:
    """Build a Zenoh config.

    With nothing given this is the embedded default: a peer that listens on
    nothing and connects to nothing, so one process works alone. With
    ``connect`` it is a client of the router(s) at those endpoints. A ``config``
    file (json5) is read first; the arguments given override it.
    """
    cfg = zenoh.Config.from_file(str(config)) if config is not None else zenoh.Config()
    connect_to = _endpoints(connect)
    listen_on = _endpoints(listen)
    if mode is None and config is None:
        mode = "client" if connect_to and not listen_on else "peer"
    if mode is not None:
        cfg.insert_json5("mode", json.dumps(mode))
    if config is None or listen is not None:
        cfg.insert_json5("listen/endpoints", json.dumps(listen_on))
    if config is None or connect is not None:
        cfg.insert_json5("connect/endpoints", json.dumps(connect_to))
    cfg.insert_json5("scouting/multicast/enabled", "false")
    return cfg
