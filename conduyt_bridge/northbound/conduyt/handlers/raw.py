"""Raw Conduyt packets on MQTT: `{base}/{dev}/cmd[/{tt}]` in, `{base}/{dev}/evt/{tt}` out.

Compatibility with native Conduyt MQTT clients (`docs/protocol.md` §9.3): the JS SDK
publishes on `cmd/{tt}`, conduyt-py on the bare `cmd`; both read `evt/#`.

A raw command goes through the same checks as the typed topics
(`conduyt_bridge.device.capabilities.check_command` plus the stateful ones of
`conduyt_bridge.core.pins.PinState`)
before it reaches the board:

1. `allow_raw = false` → `forbidden` `RAW_DISABLED` (nothing on `evt/`);
2. the payload must be exactly one v2 packet (bad magic, version, CRC, truncation, trailing
   bytes → `payload` error naming the problem); a `{tt}` in the topic (1-2 hex digits,
   any case) must equal the packet's TYPE;
3. the command is validated for the board; OTA types need `allow_ota = true`.

Sequence numbers are remapped: the board sees the bridge's own sequence number (the
session picks a free one, so raw clients and the bridge never collide) and the reply is
re-encoded with the client's SEQ and published on `evt/{reply type}` (QoS 1). Then:

- HELLO is answered from the cached HELLO_RESP (`evt/81`), not sent to the board: a
  native device would publish it on `hello`, which conduyt-py never subscribes to.
- PING is forwarded, so a PONG proves the board (not just the bridge) is alive.
- RESET is forwarded; on ACK the bridge's own ANALOG_POLL subscriptions are re-applied
  (RESET frees them on the board, Q16) and raw clients' subscriptions are dropped.
- PIN_SUBSCRIBE with CHANGE/RISING/FALLING (which the firmware never fires, Q11) is served
  by the bridge's own polling; its ACK comes from the bridge, its edges are published as
  PIN_EVENT packets (SEQ 0) on `evt/90` as well as on `pin/{n}`. PIN_UNSUBSCRIBE of a pin
  with nothing active is refused (the board would NAK INVALID_PIN).
- DS_READ is refused (the firmware NAKs every DS_READ, §10 #11); an ACKed DS_WRITE also
  updates the datastream's state topic, like `ds/{slug}/set`.
- A refusal by the bridge (after the packet decoded and matched its topic) is reported on
  `{dev}/error` *and* answered on `evt/83` with a NAK carrying the client's SEQ and the
  code the firmware uses for that kind of problem (`nak_code_for`), so native clients
  fail at once instead of waiting for their timeout. A NAK from the board is republished
  as is. A timeout or an offline board gets no packet (as with a native device).

Board events go raw on `evt/{tt}` with their SEQ 0 while `allow_raw` is on (QoS 1 for
MOD_EVENT and FATAL, 0 for the rest), but by default only those that have no typed topic
(STREAM_DATA, LOG, FATAL): a DS_EVENT, PIN_EVENT or MOD_EVENT is published once, on
`ds/{slug}`, `pin/{n}` or `module/{mod}/event/{event}`, so `mosquitto_sub -t '{base}/#'`
shows no binary duplicates and the broker carries each event once. The exception are the
PIN_EVENTs of a pin a raw client subscribed to (`cmd/13`, or an edge the bridge polls for
it): they answer a raw command and go to `evt/90` too. `raw_mirror = true` on the board
mirrors every event, for native-SDK clients that read datastreams and modules from `evt/#`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conduyt_bridge.core.pins import Subscription
from conduyt_bridge.device.capabilities import check_command
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytError,
    ConduytForbiddenError,
    ConduytNAKError,
    ConduytPayloadError,
    ErrorName,
)
from conduyt_bridge.northbound.conduyt.module_events import publish_module_event
from conduyt_bridge.protocol.constants import (
    EVENT_TYPES,
    OTA_TYPES,
    ErrorCode,
    PacketType,
    PinMode,
    SubscribeMode,
    type_name,
)
from conduyt_bridge.protocol.errors import (
    BadMagicError,
    CrcMismatchError,
    OversizePacketError,
    ProtocolError,
    TruncatedPacketError,
    ValueDecodeError,
    VersionMismatchError,
)
from conduyt_bridge.protocol.packet import Packet, decode_packet, decode_prefix
from conduyt_bridge.protocol.values import decode_value

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board
    from conduyt_bridge.device.session import DeviceSession
    from conduyt_bridge.northbound.conduyt.face import BoardFace


_TYPE_LEVEL = re.compile(r"[0-9A-Fa-f]{1,2}")

_DECODE_NAMES: dict[type[ProtocolError], ErrorName] = {
    TruncatedPacketError: ErrorName.TRUNCATED,
    BadMagicError: ErrorName.BAD_MAGIC,
    VersionMismatchError: ErrorName.VERSION_MISMATCH,
    CrcMismatchError: ErrorName.CRC_MISMATCH,
    OversizePacketError: ErrorName.PAYLOAD_TOO_LARGE,
}

_PIN_FAMILY = frozenset(
    {
        PacketType.PIN_MODE,
        PacketType.PIN_WRITE,
        PacketType.PIN_READ,
        PacketType.PIN_SUBSCRIBE,
        PacketType.PIN_UNSUBSCRIBE,
        PacketType.STREAM_START,
    }
)
_I2C_FAMILY = frozenset({PacketType.I2C_WRITE, PacketType.I2C_READ, PacketType.I2C_READ_REG})
_DS_FAMILY = frozenset({PacketType.DS_WRITE, PacketType.DS_READ, PacketType.DS_SUBSCRIBE})

_DS_EVENT = int(PacketType.DS_EVENT)  # a plain int compares faster than the IntEnum member

TYPED_EVENTS = frozenset({PacketType.DS_EVENT, PacketType.PIN_EVENT, PacketType.MOD_EVENT})
"""Events with a typed topic: raw on `evt/{tt}` only with `raw_mirror` (or, PIN_EVENT, for a
pin a raw client subscribed to)."""


def parse_type_level(text: str) -> int | None:
    """TYPE from the `{tt}` topic level (1-2 hex digits, any case); None for bare `cmd`.

    Raises ConduytPayloadError `BAD_TOPIC`.
    """
    if not text:
        return None
    if not _TYPE_LEVEL.fullmatch(text):
        raise ConduytPayloadError(
            f"topic level '{text}' is not a packet TYPE in hex (e.g. cmd/11 for PIN_WRITE)",
            ErrorName.BAD_TOPIC,
        )
    return int(text, 16)


def decode_one_packet(payload: bytes) -> Packet:
    """The single packet an MQTT message must hold (§3.3).

    Raises ConduytPayloadError `BAD_MAGIC`, `VERSION_MISMATCH`, `CRC_MISMATCH`, `TRUNCATED` or
    `TRAILING_BYTES` (a second packet or junk after the first poisons a native device's
    parser, Q3).
    """
    try:
        packet, size = decode_prefix(payload)
    except ProtocolError as exc:
        name = _DECODE_NAMES.get(type(exc), ErrorName.BAD_PACKET)
        raise ConduytPayloadError(f"not a valid Conduyt packet: {exc}", name) from None
    if size < len(payload):
        raise ConduytPayloadError(
            f"{len(payload) - size} bytes after the {size}-byte packet: one message must hold "
            "exactly one packet",
            ErrorName.TRAILING_BYTES,
        )
    return packet


def nak_code_for(error: ConduytError, type_: int) -> int:
    """NAK code answering a raw command the bridge refused: the error's name when it is a
    firmware code (INVALID_PIN, SUB_LIMIT_REACHED, …), else the code the firmware uses for
    malformed packets of that family (pins: INVALID_PIN for a bad length,
    PIN_MODE_UNSUPPORTED otherwise; I2C: I2C_NOT_AVAILABLE; MOD_CMD: MODULE_NOT_LOADED /
    UNKNOWN_MODULE_CMD; datastreams: UNKNOWN_DATASTREAM; OTA: OTA_INVALID; else
    UNKNOWN_TYPE)."""
    if error.name in ErrorCode.__members__:
        return int(ErrorCode[error.name])
    short = error.name == ErrorName.BAD_LENGTH
    if type_ in _PIN_FAMILY:
        return ErrorCode.INVALID_PIN if short else ErrorCode.PIN_MODE_UNSUPPORTED
    if type_ in _I2C_FAMILY:
        return ErrorCode.I2C_NOT_AVAILABLE
    if type_ == PacketType.MOD_CMD:
        return ErrorCode.MODULE_NOT_LOADED if short else ErrorCode.UNKNOWN_MODULE_CMD
    if type_ in _DS_FAMILY:
        return ErrorCode.UNKNOWN_DATASTREAM
    if type_ in OTA_TYPES:
        return ErrorCode.OTA_INVALID
    return ErrorCode.UNKNOWN_TYPE


class RawController:
    """Raw packet topics of one board: command handler, event mirror, edge PIN_EVENTs."""

    def __init__(self, board: Board, face: BoardFace) -> None:
        self.board = board
        self.face = face
        self.pins = board.pins

    @property
    def enabled(self) -> bool:
        """`allow_raw` of the board's config."""
        return self.board.config.allow_raw

    def publish_packet(self, packet: Packet, qos: int = 1) -> None:
        """Publish `packet` raw on `evt/{tt}` (not retained, never coalesced)."""
        self.face.mqtt.publish(
            self.face.topics.evt(packet.type), packet.encode(), qos=qos, coalesce=False
        )

    # ---- hooks ------------------------------------------------------------------------

    def on_packet(self, packet: Packet) -> None:
        """Every event packet of the board: typed MOD_EVENT topics, then the raw mirror."""
        if packet.type == PacketType.MOD_EVENT:
            publish_module_event(self.board, self.face, packet)
        if self.enabled and packet.type in EVENT_TYPES and self._mirrors(packet):
            important = packet.type in (PacketType.MOD_EVENT, PacketType.FATAL)
            self.publish_packet(packet, qos=1 if important else 0)

    def on_packets(self, packets: Sequence[Packet]) -> None:
        """`on_packet` for each, in order (the batch path,
        `docs/architecture.md` §6.1): with `raw_mirror` off a DS_EVENT publishes nothing
        here, so those are skipped at once; with it on, the QoS 0 mirrors of a run go out
        in one `publish_many` call."""
        config = self.board.config
        if not (config.allow_raw and config.raw_mirror):
            for packet in packets:
                if packet.type != _DS_EVENT:
                    self.on_packet(packet)
            return
        topics: dict[int, str] = {}
        batch: list[tuple[str, bytes]] = []
        for packet in packets:
            if packet.type in (PacketType.MOD_EVENT, PacketType.FATAL):
                if batch:
                    self.face.mqtt.publish_many(batch, coalesce=False)
                    batch = []
                self.on_packet(packet)
            elif packet.type in EVENT_TYPES:
                topic = topics.get(packet.type)
                if topic is None:
                    topic = topics[packet.type] = self.face.topics.evt(packet.type)
                batch.append((topic, packet.encode()))
        if batch:
            self.face.mqtt.publish_many(batch, coalesce=False)

    def _mirrors(self, packet: Packet) -> bool:
        """Whether an event goes raw on `evt/{tt}` (see the module docstring)."""
        if self.board.config.raw_mirror or packet.type not in TYPED_EVENTS:
            return True
        if packet.type == PacketType.PIN_EVENT and packet.payload:
            return self._raw_subscribed(packet.payload[0])
        return False

    def _raw_subscribed(self, pin: int) -> bool:
        sub = self.pins.active.get(pin)
        return sub is not None and sub.origin == "raw"

    def on_edge(self, pin: int, value: int) -> None:
        """An edge found by the bridge's polling (a `PinValue` with `edge`), as the PIN_EVENT the
        firmware would have sent (`[pin][value u16le]`, SEQ 0) on `evt/90` (for a raw
        client's subscription, or every edge with `raw_mirror`)."""
        if self.enabled and (self.board.config.raw_mirror or self._raw_subscribed(pin)):
            payload = struct.pack("<BH", pin, value)
            self.publish_packet(Packet(PacketType.PIN_EVENT, 0, payload), qos=0)

    # ---- command handler ----------------------------------------------------------------

    async def handle(self, target: str, payload: bytes) -> dict[str, Any]:
        """`cmd` / `cmd/{tt}`: decode, validate, forward, republish the reply.

        Returns `{"type": reply name, "seq": client SEQ, "packet": reply hex}`.
        Raises ConduytForbiddenError, ConduytPayloadError, ConduytCapabilityError, ConduytNAKError,
        ConduytTimeoutError, ConduytDisconnectedError (see the module docstring).
        """
        if not self.enabled:
            raise ConduytForbiddenError(
                f"raw packets are disabled for board '{self.board.dev}' (allow_raw = false)",
                ErrorName.RAW_DISABLED,
            )
        expected = parse_type_level(target)
        packet = decode_one_packet(payload)
        if expected is not None and expected != packet.type:
            raise ConduytPayloadError(
                f"topic says TYPE 0x{expected:02x} ({type_name(expected)}) but the packet is "
                f"0x{packet.type:02x} ({packet.type_name})",
                ErrorName.TYPE_MISMATCH,
            )
        try:
            reply = await self._execute(packet)
        except ConduytNAKError as exc:
            nak = bytes((exc.code,)) if exc.code is not None else b""
            self.publish_packet(Packet(PacketType.NAK, packet.seq, nak))
            raise
        except (ConduytCapabilityError, ConduytPayloadError, ConduytForbiddenError) as exc:
            code = nak_code_for(exc, packet.type)
            self.publish_packet(Packet(PacketType.NAK, packet.seq, bytes((code,))))
            raise
        out = Packet(reply.type, packet.seq, reply.payload)
        self.publish_packet(out)
        return {"type": out.type_name, "seq": out.seq, "packet": out.encode().hex()}

    async def _execute(self, packet: Packet) -> Packet:
        """Validate and carry out one raw command; returns the reply (any SEQ)."""
        board = self.board
        board.require_hello()
        session = board.require_session()
        hello = session.hello
        assert hello is not None
        check_command(
            hello,
            packet.type,
            packet.payload,
            max_command_payload=session.max_command_payload,
            allow_ota=board.config.allow_ota,
            pin_modes=self.pins.modes,
        )
        kind = PacketType(packet.type)  # check_command accepted it: a defined command
        p = packet.payload
        ack = Packet(PacketType.ACK, 0)
        if kind is PacketType.HELLO:
            cached = session.hello_packet
            assert cached is not None  # set by the handshake, before the board is online
            return Packet(PacketType.HELLO_RESP, 0, decode_packet(cached).payload)
        if kind is PacketType.PIN_SUBSCRIBE:
            interval, threshold = struct.unpack_from("<HH", p, 2)
            sub = Subscription(p[0], SubscribeMode(p[1]), interval, threshold, "raw")
            await self.pins.activate(session, hello, sub)
            self.pins.overrides.pop(sub.pin, None)
            return ack
        if kind is PacketType.PIN_UNSUBSCRIBE:
            return await self._unsubscribe(session, p[0])
        reply = await session.request(kind, p)
        if kind is PacketType.PIN_MODE:
            self.pins.note_mode(p[0], PinMode(p[1]))
        elif kind is PacketType.RESET:
            await self.pins.after_reset(session, hello)
        elif kind is PacketType.DS_WRITE:
            self._written(p[0], p[1:])
        return reply

    async def _unsubscribe(self, session: DeviceSession, pin: int) -> Packet:
        if pin not in self.pins.active and pin not in self.pins.board_active:
            raise ConduytCapabilityError(
                f"pin {pin} has no active subscription (the board would NAK INVALID_PIN)",
                ErrorName.INVALID_PIN,
            )
        await self.pins.deactivate(session, pin, strict=True)
        self.pins.overrides.pop(pin, None)
        return Packet(PacketType.ACK, 0)

    def _written(self, index: int, raw: bytes) -> None:
        """An ACKed raw DS_WRITE: publish the datastream's new state like `ds/…/set` does
        (and remember it for replay when the datastream is retained)."""
        board = self.board
        hello = board.hello
        ds = hello.datastream(index) if hello is not None else None
        slug = board.slug_by_index.get(index)
        if ds is None or slug is None:
            return
        try:
            value = decode_value(ds, raw)
        except ValueDecodeError:
            return
        board.written(slug, ds, value)


__all__ = [
    "TYPED_EVENTS",
    "RawController",
    "decode_one_packet",
    "nak_code_for",
    "parse_type_level",
]
