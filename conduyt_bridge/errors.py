"""Typed errors of the bridge, each mapped to a stable `error` string of the MQTT error
report (`docs/architecture.md` §2, `docs/topics.md` §6)."""

from __future__ import annotations

import os

from conduyt_bridge.protocol.constants import error_name


class BridgeError(Exception):
    """Base of errors reported on `{base}/{dev}/error`; `kind` is the report's `error` field."""

    kind = "error"

    @property
    def code(self) -> int | None:
        """NAK code for `nak` errors, else None."""
        return None

    @property
    def name(self) -> str:
        """Short machine name for the report's `name` field (e.g. `INVALID_PIN`)."""
        return type(self).__name__.removesuffix("Error").upper()


class CapabilityError(BridgeError):
    """Refused in the bridge because the board cannot do it; nothing was sent."""

    kind = "capability"

    def __init__(self, message: str, name: str = "CAPABILITY") -> None:
        super().__init__(message)
        self._name = name

    @property
    def name(self) -> str:
        return self._name


class PayloadError(BridgeError):
    """A command payload that does not parse or has the wrong shape; nothing was sent."""

    kind = "payload"

    def __init__(self, message: str, name: str = "BAD_PAYLOAD") -> None:
        super().__init__(message)
        self._name = name

    @property
    def name(self) -> str:
        return self._name


class ForbiddenError(BridgeError):
    """Refused by configuration (`read_only`, `allow_raw`, `allow_ota`, retained command)."""

    kind = "forbidden"

    def __init__(self, message: str, name: str = "FORBIDDEN") -> None:
        super().__init__(message)
        self._name = name

    @property
    def name(self) -> str:
        return self._name


class NakError(BridgeError):
    """The board answered NAK (`docs/protocol.md` §5.1); `code` is the NAK payload byte."""

    kind = "nak"

    def __init__(self, code: int | None, request: str = "") -> None:
        self._code = code
        label = error_name(code)
        suffix = f" (0x{code:02x})" if code is not None else ""
        super().__init__(f"board refused {request or 'the command'}: {label}{suffix}")

    @property
    def code(self) -> int | None:
        return self._code

    @property
    def name(self) -> str:
        return error_name(self._code)


class DeviceTimeoutError(BridgeError):
    """The board did not answer within the command timeout (the firmware is silent on many
    errors, quirk Q2)."""

    kind = "timeout"

    def __init__(self, request: str, timeout_s: float) -> None:
        super().__init__(f"no answer to {request} within {timeout_s * 1000:.0f} ms")
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "TIMEOUT"


class DisconnectedError(BridgeError):
    """The board's link is down (or went down while the command was pending)."""

    kind = "disconnected"

    def __init__(self, message: str = "board is offline") -> None:
        super().__init__(message)

    @property
    def name(self) -> str:
        return "OFFLINE"


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
