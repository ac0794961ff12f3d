"""Why a `ConduytDevice` connected or disconnected: the reasons its `on_connected` and
`on_disconnected` callbacks receive (`docs/library.md` §5), in the style of Tinkerforge's
IPConnection."""

from __future__ import annotations

from enum import StrEnum

from conduyt_bridge.device.link_loss import LinkLoss, LossKind


class ConnectReason(StrEnum):
    """Why the board is connected now."""

    REQUEST = "request"
    """`connect()` was called (or the device was entered as a context manager)."""
    AUTO_RECONNECT = "auto_reconnect"
    """The link had been lost and `auto_reconnect` brought it back."""


class DisconnectReason(StrEnum):
    """Why the board is not connected any more."""

    REQUEST = "request"
    """`disconnect()` or `close()` was called (or the context manager was left)."""
    SHUTDOWN = "shutdown"
    """The other end closed the connection (end of stream: the TCP peer or the serial
    server hung up)."""
    ERROR = "error"
    """A read or write failed (a pulled USB cable reads as EIO), or the link broke in
    another way (a failed re-handshake, an internal error)."""
    LOST = "lost"
    """The board stopped answering: `keepalive_misses` keepalive PINGs in a row went
    unanswered."""


def disconnect_reason(loss: LinkLoss | None) -> DisconnectReason:
    """The `DisconnectReason` of an ended link, from the session's `LinkLoss`."""
    if loss is None:
        return DisconnectReason.ERROR
    if loss.kind is LossKind.CLOSED:
        return DisconnectReason.SHUTDOWN
    if loss.kind is LossKind.SILENT:
        return DisconnectReason.LOST
    return DisconnectReason.ERROR
