"""Small parts of `ConduytDevice`'s connection handling (`docs/library.md` §1): the
record of a connection being torn down, the replay of pin modes and subscriptions
after a reconnect, failing a pending `connect()`, the errors
`ConduytDevice()` and `connect()` raise, and the u32 fields of the OTA commands
(`docs/protocol.md` §4.2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from conduyt_bridge.device.board_context import BoardContext
from conduyt_bridge.device.capabilities import mode_name
from conduyt_bridge.device.link_loss import LinkLoss
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytNAKError,
    ConduytPayloadError,
    ConduytTimeoutError,
    ErrorName,
)
from conduyt_bridge.protocol.commands import pin_mode, pin_subscribe
from conduyt_bridge.protocol.constants import PacketType, SubscribeMode
from conduyt_bridge.protocol.hello import HelloResp

U32_MAX = 0xFFFF_FFFF
"""Largest OTA image size and chunk offset, bytes (u32le fields, `docs/protocol.md` §4.2)."""


@dataclass(frozen=True, slots=True)
class Detached:
    """A connection taken away from its device by `_detach`, to be torn down."""

    was_connected: bool
    runner: asyncio.Task[None] | None


def fail_first(first: asyncio.Future[HelloResp] | None, error: ConduytError) -> None:
    """Fail a `connect()`'s pending result (nothing if it is None or done)."""
    if first is not None and not first.done():
        first.set_exception(error)
        first.exception()  # retrieved: `connect()` may no longer be waiting for it


def u32_field(label: str, value: int) -> bytes:
    """`value` as u32le. Raises ConduytPayloadError `OUT_OF_RANGE` outside 0..2^32-1."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
        raise ConduytPayloadError(
            f"{label} must be an integer 0..{U32_MAX} bytes, got {value!r}",
            ErrorName.OUT_OF_RANGE,
        )
    return value.to_bytes(4, "little")


def not_a_transport(transport: object) -> str:
    """The TypeError message for a `transport` argument without `open()`."""
    kind = f"{type(transport).__module__}.{type(transport).__qualname__}"
    hint = ""
    if kind.startswith("conduyt."):
        hint = " (conduyt-py's transports cannot be used: replace the import)"
    return (
        f"ConduytDevice needs a conduyt-bridge transport or a port URL, not {kind}{hint}: "
        "use a URL such as '/dev/ttyUSB0', 'tcp://host:5000' or 'sim://thermostat', or "
        "SerialTransport(port) / TcpTransport(url) / SimTransport(profile) from "
        "conduyt_bridge.transports"
    )


def connect_error(loss: LinkLoss | None, name: str) -> ConduytError:
    """The error `connect()` raises for a first attempt that failed."""
    if loss is None:
        return ConduytDisconnectedError(f"{name}: could not connect")
    error = ConduytDisconnectedError(loss.reason)
    error.__cause__ = loss.error
    return error


async def replay_settings(
    context: BoardContext, session: DeviceSession, report: Callable[[str], None]
) -> None:
    """Set again, after a reconnect's RESET, the pin modes and subscriptions set through
    the library (the board forgets them on a reboot; RESET stops subscriptions, Q6),
    each on its own: one the board refuses or does not answer is passed to `report` as
    a sentence, and the rest still go. Nothing for another board (`board_changed`).

    Raises ConduytDisconnectedError when the link is lost meanwhile (the handshake fails).
    """
    context.slots_used = 0
    if session.board_changed:
        context.forget()
        return
    for pin, mode in list(context.pin_modes.items()):
        what = f"pin {pin} mode {mode_name(mode)}"
        await _replay(session, what, PacketType.PIN_MODE, pin_mode(pin, mode), report)
    for pin, sub in list(context.subscriptions.items()):
        payload = pin_subscribe(pin, SubscribeMode.ANALOG_POLL, sub.interval_ms, sub.threshold)
        what = f"pin {pin} subscription every {sub.interval_ms} ms"
        if await _replay(session, what, PacketType.PIN_SUBSCRIBE, payload, report):
            context.slots_used += 1


async def _replay(
    session: DeviceSession,
    what: str,
    type_: PacketType,
    payload: bytes,
    report: Callable[[str], None],
) -> bool:
    try:
        await session.request(type_, payload)
    except (ConduytNAKError, ConduytTimeoutError, ConduytCapabilityError) as exc:
        report(f"could not set {what} again after reconnecting: {exc}")
        return False
    return True
