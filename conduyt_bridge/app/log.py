"""Logging: structlog on top of the standard library, JSON lines or console output.

Every record, ours and those of libraries that use `logging` (paho-mqtt, aiomqtt),
goes through one root handler whose `structlog.stdlib.ProcessorFormatter` renders
it, so all lines share one format. Board code binds `device=<id>` so that every line
about a board carries its device id.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import Processor

__all__ = ["configure_logging", "get_logger"]

LogFormat = Literal["auto", "json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# The handler we installed last, so that reconfiguring replaces it instead of adding a
# second one, and never touches handlers others installed (pytest's caplog, for one).
_handler: logging.Handler | None = None


def _shared_processors() -> list[Processor]:
    """Processors for every record, whether it came from structlog or stdlib logging."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _console_exception_formatter() -> structlog.typing.ExceptionRenderer:
    # structlog's default picks rich (show_locals=True) or better_exceptions (prints
    # variable values) when installed; frame locals can hold passwords, so never show them.
    if importlib.util.find_spec("rich") is not None:
        return structlog.dev.RichTracebackFormatter(show_locals=False)
    return structlog.dev.plain_traceback


def _renderer_processors(fmt: LogFormat, stream: TextIO) -> list[Processor]:
    tty = _is_tty(stream)
    if fmt == "console" or (fmt == "auto" and tty):
        # NO_COLOR (https://no-color.org) and non-terminals get no escape codes.
        colors = tty and "NO_COLOR" not in os.environ
        return [
            structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=_console_exception_formatter()
            )
        ]
    # format_exc_info renders a plain traceback string: no frame locals by construction.
    return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging to one handler on `stream`.

    Safe to call more than once: each call replaces the handler the previous call
    installed. Lines carry `timestamp` (ISO 8601, UTC), `level`, `logger` and
    `event` plus any bound keys.

    Args:
        level: `debug`, `info`, `warning`, `error` or `critical` (any case);
            applies to the root logger. With `debug` the `mqtt` logger (paho via
            aiomqtt, which pins it to WARNING at import) is opened up too.
        fmt: `json` (one JSON object per line), `console` (human-readable), or
            `auto`: console when `stream` is a terminal, JSON otherwise.
        stream: where lines go; `None` means `sys.stderr` at call time.

    Raises:
        ValueError: unknown `level` or `fmt`.
    """
    global _handler
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(_LEVELS)}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}: expected auto, json or console")
    out = sys.stderr if stream is None else stream

    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger used before this call (or before a reconfiguration) would
        # otherwise keep structlog's default stdout printer forever.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        # extra={...} on a stdlib call becomes keys, as bound values do for structlog.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer_processors(fmt, out),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(numeric)
    _handler = handler

    if numeric == logging.DEBUG:
        # Import aiomqtt first if it is installed: its import resets "mqtt" to WARNING,
        # which would silently undo this if it happened later.
        with contextlib.suppress(ImportError):
            importlib.import_module("aiomqtt")
        logging.getLogger("mqtt").setLevel(logging.DEBUG)
    else:
        # paho's INFO chatter stays hidden (aiomqtt's own choice), and a stricter level
        # applies to it too: a logger's own level is not capped by the root's.
        logging.getLogger("mqtt").setLevel(max(numeric, logging.WARNING))


def get_logger(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` with `bound` keys on every line.

    Lazy: it may be created at import time, before `configure_logging` runs.

    Args:
        name: the stdlib logger name, usually `__name__`.
        **bound: key/value pairs added to every line, e.g. `device="greenhouse"`.
    """
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **bound)
    return logger
