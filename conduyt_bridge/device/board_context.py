"""The state one `ConduytDevice` keeps about its board, shared by its pins, datastreams and
modules: the session of the current connection, the last HELLO_RESP, and what was set
through the library (pin modes, subscriptions, datastream values).

The firmware forgets pin modes and subscriptions on a reboot and frees subscription slots
only on RESET (`docs/protocol.md` Q6), so the library remembers them to replay after an
automatic reconnect and to refuse a subscription that has no slot left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.errors import ConduytDisconnectedError
from conduyt_bridge.protocol.constants import PinMode
from conduyt_bridge.protocol.hello import HelloResp
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.protocol.values import DatastreamValue


@dataclass(frozen=True, slots=True)
class PinSubscription:
    """An ANALOG_POLL subscription set through the library (`docs/protocol.md` §4.2)."""

    interval_ms: int
    threshold: int


@dataclass
class BoardContext:
    """What the library knows of one board; see the module docstring."""

    name: str
    session: DeviceSession | None = None
    hello: HelloResp | None = None
    """The last HELLO_RESP: kept while a lost link is being reopened, None before the
    first handshake and after `disconnect()`."""
    pin_modes: dict[int, PinMode] = field(default_factory=dict)
    subscriptions: dict[int, PinSubscription] = field(default_factory=dict)
    slots_used: int = 0
    """Subscription slots taken on the board since its last RESET (they leak, Q6)."""
    values: dict[str, DatastreamValue] = field(default_factory=dict)
    """Last value of each datastream, by name: pushed by the board or written by us."""

    def forget(self) -> None:
        """Drop everything learnt about the board (a new connection or another board)."""
        self.pin_modes.clear()
        self.subscriptions.clear()
        self.slots_used = 0
        self.values.clear()

    def require_hello(self) -> HelloResp:
        """The board's HELLO_RESP. Raises ConduytDisconnectedError before the first
        handshake of a `connect()`."""
        if self.hello is None:
            raise ConduytDisconnectedError(f"{self.name} is not connected: call connect() first")
        return self.hello

    @property
    def max_command_payload(self) -> int:
        """Largest command payload the board takes on this link, bytes (§1.5)."""
        return self.session.max_command_payload if self.session is not None else 0xFFFF

    async def request(self, type_: int, payload: bytes = b"") -> Packet:
        """Send a command and return its reply (`DeviceSession.request`), only while the
        board is online: during a reconnect's handshake the replay goes first and the
        commands are checked against the new HELLO_RESP (the handshake hooks call
        `DeviceSession.request` themselves).

        Raises ConduytDisconnectedError (not connected, or reconnecting),
        ConduytTimeoutError, ConduytNAKError, ConduytCapabilityError (payload over the
        board's limit).
        """
        session = self.session
        if session is None:
            raise ConduytDisconnectedError(f"{self.name} is not connected: call connect() first")
        if not session.online:
            raise ConduytDisconnectedError(f"{self.name} is offline (reconnecting or lost)")
        return await session.request(type_, payload)
