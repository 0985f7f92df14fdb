"""Where edabus's log events go: the host program's choice, never the library's.

edabus's modules log structlog-style events (an event name and fields) through
`get_logger(__name__)`. Each call goes where the program hosting edabus says:

- if the host configured structlog (`structlog.configure`; the ``edabus`` command
  does, with `configure_logging`), through that configuration, as the host's own
  events do: its processors, its level, its output;
- otherwise, as a record of the standard `logging` module on the module's logger
  (``edabus._host._node``, ``edabus._runtime._supervisor``, ..., all under ``edabus``), at the
  event's level, its message the event name and its fields (``key=value``, one
  line; the record also carries them as ``record.event`` and ``record.fields``).
  A program that set up no logging sees warnings and errors on stderr (logging's
  last resort) and nothing else; ``logging.getLogger("edabus")`` turns them up,
  down or elsewhere like any library's.

The library never configures logging; `configure_logging` is for the command line.
A call below the level costs a check or two: hot paths may log at debug.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["Logger", "configure_logging", "get_logger"]

_DEBUG, _INFO, _WARNING, _ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR
_configured = structlog.is_configured


class Logger:
    """A module's edabus logger (see the module's doc); `bind` adds fields to all its events."""

    def __init__(self, name: str, fields: dict[str, Any] | None = None) -> None:
        self._std = logging.getLogger(name)
        self._fields = fields or {}
        self._proxy = structlog.get_logger(name, **self._fields)  # lazy: the configuration at first use

    def bind(self, **fields: Any) -> Logger:
        """A logger like this one, with ``fields`` added to every event."""
        return Logger(self._std.name, {**self._fields, **fields})

    def debug(self, event: str, **fields: Any) -> None:
        if _configured():
            self._structlog().debug(event, **fields)
        elif self._std.isEnabledFor(_DEBUG):
            self._emit(_DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        if _configured():
            self._structlog().info(event, **fields)
        elif self._std.isEnabledFor(_INFO):
            self._emit(_INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        if _configured():
            self._structlog().warning(event, **fields)
        elif self._std.isEnabledFor(_WARNING):
            self._emit(_WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        if _configured():
            self._structlog().error(event, **fields)
        elif self._std.isEnabledFor(_ERROR):
            self._emit(_ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """`error` with the exception being handled (its traceback)."""
        fields.setdefault("exc_info", True)
        if _configured():
            self._structlog().error(event, **fields)
        elif self._std.isEnabledFor(_ERROR):
            self._emit(_ERROR, event, fields)

    def _structlog(self) -> Any:
        """The host's structlog logger for this one, assembled from its configuration now.

        If that configuration caches loggers on first use, this one is kept for good, as
        structlog keeps its own: its methods replace ours on this instance, so that a call
        costs what a call to it costs (a filtered one, next to nothing).
        """
        logger = self._proxy.bind()
        if structlog.get_config()["cache_logger_on_first_use"]:
            for method in ("debug", "info", "warning", "error", "exception"):
                setattr(self, method, getattr(logger, method))
        return logger

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        """A `logging` record: ``event key=value ...``, the bound fields last."""
        exc_info = fields.pop("exc_info", None)
        if self._fields:
            fields = {**fields, **{k: v for k, v in self._fields.items() if k not in fields}}
        text = " ".join([event, *[f"{k}={v!r}" for k, v in fields.items()]])
        # stacklevel 3: the record names the edabus function that logged, not this one or its caller here.
        self._std.log(level, text, exc_info=exc_info, stacklevel=3, extra={"event": event, "fields": fields})


def get_logger(name: str) -> Logger:
    """The logger of an edabus module (``get_logger(__name__)``)."""
    return Logger(name)


def configure_logging(*, json: bool = False, level: str = "info") -> None:
    """Structlog to stderr: a console renderer for a terminal, JSON lines with ``json=True``.

    The command line's set-up (``--log-json``, ``--log-level``); a program that embeds
    edabus configures its own logging, or none.
    """
    renderer: structlog.types.Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso" if json else "%H:%M:%S"),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
