"""One error model for the library and the bridge: every error raised on purpose derives
from `ConduytError`, and its class says whose fault it is (`docs/architecture.md` §2):

| class | whose fault | sent to the board? |
|---|---|---|
| `ConduytCapabilityError` | the caller: the board cannot do it (HELLO_RESP says so) | no |
| `ConduytPayloadError` | the caller: a payload that does not parse or has the wrong shape | no |
| `ConduytForbiddenError` | the caller: refused by configuration (`read_only`, `allow_raw`…) | no |
| `ConduytNAKError` | the board: it answered NAK (`docs/protocol.md` §5.1) | yes |
| `ConduytTimeoutError` | the board or its link: no answer in time (`docs/protocol.md` Q2) | yes |
| `ConduytDisconnectedError` | the link: the board is offline or went away | maybe |
| `ConduytProtocolError` | the board: bytes that do not decode (`protocol/errors.py`) | — |
| `ConduytInternalError` | a bug in conduyt-bridge | — |

The first six derive from `ConduytCommandError`: the ways a command can end that a caller
handles.

Host-side refusals carry a stable `name` from `ErrorName`; a NAK carries the board's code
and its name. How an error is reported on MQTT (the `error` field of `{base}/{dev}/error`)
is the northbound adapter's business, not the error's.
"""

from __future__ import annotations

import os
from enum import StrEnum


class ErrorName(StrEnum):
    """Stable machine names of the errors raised in the host (the report's `name` field,
    `docs/topics.md` §6). Names shared with NAK codes (`INVALID_PIN`…) mean the same thing,
    caught before anything was sent."""

    # generic, one per class
    CAPABILITY = "CAPABILITY"
    BAD_PAYLOAD = "BAD_PAYLOAD"
    FORBIDDEN = "FORBIDDEN"
    TIMEOUT = "TIMEOUT"
    OFFLINE = "OFFLINE"
    INTERNAL = "INTERNAL"
    # capability: pins, modules, datastreams, sizes
    INVALID_PIN = "INVALID_PIN"
    PIN_MODE_UNSUPPORTED = "PIN_MODE_UNSUPPORTED"
    WRONG_PIN_MODE = "WRONG_PIN_MODE"
    I2C_NOT_AVAILABLE = "I2C_NOT_AVAILABLE"
    SPI_NOT_AVAILABLE = "SPI_NOT_AVAILABLE"
    MODULE_NOT_LOADED = "MODULE_NOT_LOADED"
    UNKNOWN_MODULE_CMD = "UNKNOWN_MODULE_CMD"
    UNKNOWN_DATASTREAM = "UNKNOWN_DATASTREAM"
    DATASTREAM_READONLY = "DATASTREAM_READONLY"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    SUB_LIMIT_REACHED = "SUB_LIMIT_REACHED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    OTA_INVALID = "OTA_INVALID"
    BUSY = "BUSY"
    # payload: what the caller sent does not parse
    BAD_ARGUMENT = "BAD_ARGUMENT"
    BAD_LENGTH = "BAD_LENGTH"
    BAD_MODE = "BAD_MODE"
    BAD_REPLY = "BAD_REPLY"
    BAD_SUBSCRIPTION = "BAD_SUBSCRIPTION"
    BAD_TOPIC = "BAD_TOPIC"
    BAD_VALUE = "BAD_VALUE"
    BAD_PACKET = "BAD_PACKET"
    BAD_MAGIC = "BAD_MAGIC"
    VERSION_MISMATCH = "VERSION_MISMATCH"
    CRC_MISMATCH = "CRC_MISMATCH"
    TRUNCATED = "TRUNCATED"
    TRAILING_BYTES = "TRAILING_BYTES"
    EMPTY_PAYLOAD = "EMPTY_PAYLOAD"
    NO_VALUE = "NO_VALUE"
    NOT_UTF8 = "NOT_UTF8"
    NESTED_TOO_DEEP = "NESTED_TOO_DEEP"
    PAYLOAD_TOO_LONG = "PAYLOAD_TOO_LONG"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    # forbidden: configuration
    READ_ONLY = "READ_ONLY"
    RAW_DISABLED = "RAW_DISABLED"
    OTA_DISABLED = "OTA_DISABLED"
    RETAINED_COMMAND = "RETAINED_COMMAND"
    NOT_ENABLED = "NOT_ENABLED"


class ConduytError(Exception):
    """Root of every error conduyt-bridge raises on purpose."""

    @property
    def code(self) -> int | None:
        """The board's NAK code for `ConduytNAKError`, else None."""
        return None

    @property
    def name(self) -> str:
        """Stable machine name (`INVALID_PIN`, `TIMEOUT`…): an `ErrorName`, or a NAK
        code's name for `ConduytNAKError`."""
        return ErrorName.INTERNAL


class ConduytCommandError(ConduytError):
    """A command did not succeed: refused in the host (`ConduytRequestError`), by the board
    (`ConduytNAKError`), unanswered (`ConduytTimeoutError`) or cut off
    (`ConduytDisconnectedError`). What a caller handles; anything else escaping a command
    (`ConduytProtocolError`, `ConduytInternalError`, another exception) is a bug."""


class ConduytRequestError(ConduytCommandError):
    """The caller's request was refused in the host; nothing was sent to the board."""

    default_name = ErrorName.CAPABILITY

    def __init__(self, message: str, name: ErrorName | None = None) -> None:
        super().__init__(message)
        self._name = name if name is not None else self.default_name

    @property
    def name(self) -> ErrorName:
        return self._name


class ConduytCapabilityError(ConduytRequestError):
    """The board cannot do what was asked: its HELLO_RESP has no such pin, capability,
    module, command or datastream, or a value is out of range (`docs/protocol.md` §6)."""

    default_name = ErrorName.CAPABILITY


class ConduytPayloadError(ConduytRequestError, ValueError):
    """A payload that does not parse or has the wrong shape (also a `ValueError`, as
    conduyt-py raised for bad arguments)."""

    default_name = ErrorName.BAD_PAYLOAD


class ConduytForbiddenError(ConduytRequestError):
    """Refused by configuration (`read_only`, `allow_raw`, `allow_ota`, a retained
    command)."""

    default_name = ErrorName.FORBIDDEN


class ConduytNAKError(ConduytCommandError):
    """The board answered NAK (`docs/protocol.md` §5.1).

    `code` is the NAK payload byte (None when the NAK carried none), `error_name` its name
    (`INVALID_PIN`, or `0x42` for a code the spec does not define), `request` the command
    that was refused (`PIN_MODE`).
    """

    def __init__(
        self, code: int | None, error_name: str, request: str = "", seq: int | None = None
    ) -> None:
        self._code = code
        self.error_name = error_name
        self.request = request
        self.seq = seq
        """The sequence number of the refused command, when known (conduyt-py's field)."""
        suffix = f" (0x{code:02x})" if code is not None else ""
        super().__init__(f"board refused {request or 'the command'}: {error_name}{suffix}")

    @property
    def code(self) -> int | None:
        return self._code

    @property
    def name(self) -> str:
        return self.error_name


class ConduytTimeoutError(ConduytCommandError):
    """The board did not answer `request` within `timeout_s` seconds (the firmware is
    silent on many errors, `docs/protocol.md` Q2)."""

    def __init__(self, request: str, timeout_s: float) -> None:
        super().__init__(f"no answer to {request} within {timeout_s * 1000:.0f} ms")
        self.request = request
        self.timeout_s = timeout_s

    @property
    def timeout_ms(self) -> int:
        """The timeout in ms (conduyt-py's field)."""
        return round(self.timeout_s * 1000)

    @property
    def name(self) -> str:
        return ErrorName.TIMEOUT


class ConduytDisconnectedError(ConduytCommandError):
    """The board's link is down, or went down while the command was pending."""

    def __init__(self, message: str = "board is offline") -> None:
        super().__init__(message)

    @property
    def name(self) -> str:
        return ErrorName.OFFLINE


class ConduytInternalError(ConduytError):
    """A bug in conduyt-bridge (a handler that raised something unexpected)."""

    @property
    def name(self) -> str:
        return ErrorName.INTERNAL


def describe_exception(exc: BaseException) -> str:
    """A log-worthy description of `exc`, never empty.

    Its `str()` when that says something; an `OSError` with an errno also names it in
    words (`connection refused: [Errno 111] Connect call failed ...`, since asyncio's text
    does not say "refused"); an exception with no text (a bare `TimeoutError`,
    `CancelledError`) is named by its class, plus the exception it came from, if any.
    """
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.errno:
        meaning = os.strerror(exc.errno).lower()
        if meaning not in text.lower():
            return f"{meaning}: {text}" if text else meaning
    if text:
        return text
    name = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    inner = exc.__cause__ or exc.__context__
    return f"{name} ({describe_exception(inner)})" if inner is not None else name


__all__ = [
    "ConduytCapabilityError",
    "ConduytCommandError",
    "ConduytDisconnectedError",
    "ConduytError",
    "ConduytForbiddenError",
    "ConduytInternalError",
    "ConduytNAKError",
    "ConduytPayloadError",
    "ConduytRequestError",
    "ConduytTimeoutError",
    "ErrorName",
    "describe_exception",
]
