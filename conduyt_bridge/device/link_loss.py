"""Why a board's link ended: the kinds the session tells apart, and the errors that carry
them.

The session records a `LinkLoss` each time an open fails or an opened link ends
(`DeviceSession.last_loss`); the library turns its kind into the reason of an
`on_disconnected` callback (`conduyt_bridge.device.reasons`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from conduyt_bridge.errors import ConduytDisconnectedError


class LossKind(StrEnum):
    """How a link attempt or an open link ended."""

    OPEN_FAILED = "open_failed"
    """The port could not be opened (missing device, busy, refused, bad URL)."""
    HANDSHAKE_FAILED = "handshake_failed"
    """Opened, but no usable HELLO_RESP (`docs/protocol.md` §3.5)."""
    CLOSED = "closed"
    """The other end closed the stream (end of stream)."""
    IO_ERROR = "io_error"
    """A read or write failed (EIO of a pulled USB cable, a reset TCP connection)."""
    SILENT = "silent"
    """The board stopped answering keepalive PINGs."""
    INTERNAL = "internal"
    """A bug in a hook or an observer."""


@dataclass(frozen=True, slots=True)
class LinkLoss:
    """One ended link attempt: its kind, a log-worthy reason and the error behind it."""

    kind: LossKind
    reason: str
    error: BaseException | None = None


class LinkClosedError(ConduytDisconnectedError):
    """The board's end closed the stream (a read returned end of stream)."""


class BoardSilentError(ConduytDisconnectedError):
    """The board left `keepalive_misses` keepalive PINGs in a row unanswered."""


def loss_kind(error: BaseException | None, default: LossKind) -> LossKind:
    """The `LossKind` an error ending a link stands for; `default` when it says nothing
    more specific (a plain `ConduytDisconnectedError` without an OS error behind it)."""
    if error is None or isinstance(error, LinkClosedError):
        return LossKind.CLOSED
    if isinstance(error, BoardSilentError):
        return LossKind.SILENT
    if isinstance(error, OSError) or isinstance(error.__cause__, OSError):
        return LossKind.IO_ERROR
    return default
