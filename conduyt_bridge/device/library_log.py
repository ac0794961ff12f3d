"""Logging of the library API: through the standard `logging` module unless the host
program configured structlog.

The daemon configures structlog (`conduyt_bridge/app/log.py`); a script or a notebook
that imports the library usually has not, and structlog's default would print every
record to stdout. Records then go to the `logging` logger of the same name instead, where
Python's default shows warnings and errors on stderr and `logging.basicConfig` shows
more.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

_RENDER = structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)


def _to_logging(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[str], dict[str, Any]]:
    """Last processor: `event key=value` as the message, `exc_info` handed to `logging`,
    which prints the traceback once, below the message (rendering it into the message as
    well printed it twice)."""
    exc_info = event_dict.pop("exc_info", None)
    return (_RENDER(logger, method_name, event_dict),), {"exc_info": exc_info}


def library_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The logger called `name`: structlog's as configured by the host program, or one
    that formats `event key=value` records into the `logging` logger `name`."""
    if structlog.is_configured():
        return structlog.stdlib.get_logger(name)
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            _to_logging,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger
