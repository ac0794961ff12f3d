"""The batch path of a serial read (`docs/architecture.md` §6.1): one read holding several
DS_EVENTs, a frame with a bad CRC between them and the start of a frame at its end gives
exactly what the per-packet path gives, in the same order: the deframer's items and
counters, the read loop's runs for the observer, the board's events and values, the bus's
per-listener order."""

from __future__ import annotations

import asyncio
import os
import pty
import struct
import tty
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, cast

import pytest
from test_core import Config

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import (
    DatastreamUpdated,
    EventBus,
    PacketReceived,
    ReceivedRun,
    TextPrinted,
)
from conduyt_bridge.core.pins import TaskSet
from conduyt_bridge.device.link import Link
from conduyt_bridge.device.link_loss import LinkClosedError
from conduyt_bridge.device.receive import read_loop
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.device.transports import SERIAL_READ_SIZE, SerialTransport, limit_read_size
from conduyt_bridge.protocol.cobs_deframer import CobsDeframer, cobs_frame
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.deframer import FrameError, FrameErrorReason
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.packet import Packet, encode_packet
from conduyt_bridge.protocol.values import value_decoder
from conduyt_bridge.simulator.profiles import get_profile

HELLO = get_profile("thermostat").hello
TEMPERATURE = 0  # thermostat datastream indices: temperature, humidity (FLOAT32)
HUMIDITY = 1


def ds_event(index: int, value: float) -> bytes:
    return encode_packet(PacketType.DS_EVENT, 0, bytes((index,)) + struct.pack("<f", value))


def bad_crc(wire: bytes) -> bytes:
    return wire[:-1] + bytes(((wire[-1] + 1) & 0xFF,))


def chunk() -> tuple[bytes, bytes, list[bytes]]:
    """One read: three good DS_EVENTs with a bad-CRC one after the second, and the first
    half of a fourth; then the read with its second half. Also the good packets' wire
    bytes, in order."""
    good = [ds_event(TEMPERATURE, 21.5), ds_event(HUMIDITY, 40.0), ds_event(TEMPERATURE, 22.25)]
    last = cobs_frame(ds_event(HUMIDITY, 41.5))
    first = (
        cobs_frame(good[0])
        + cobs_frame(good[1])
        + cobs_frame(bad_crc(ds_event(TEMPERATURE, 99.0)))
        + cobs_frame(good[2])
        + last[:5]
    )
    return first, last[5:], [*good, ds_event(HUMIDITY, 41.5)]


def test_deframer_chunk_with_a_crc_error_and_a_partial_frame() -> None:
    first, rest, wires = chunk()
    deframer = CobsDeframer()
    items = deframer.feed_stream(first)
    assert [type(i) for i in items] == [Packet, Packet, FrameError, Packet]
    packets = [i for i in items if isinstance(i, Packet)]
    assert [p.wire for p in packets] == wires[:3]  # the received bytes, kept as they came
    assert [(p.type, p.seq, p.payload) for p in packets] == [
        (PacketType.DS_EVENT, 0, w[7:-1]) for w in wires[:3]
    ]
    error = items[2]
    assert isinstance(error, FrameError)
    assert error.reason is FrameErrorReason.CRC_MISMATCH
    assert error.detail == "CRC mismatch: computed 0x85, packet says 0x86"
    assert deframer.stats.packets == 3 and deframer.stats.crc_errors == 1
    tail = deframer.feed_stream(rest)
    assert tail == [Packet(PacketType.DS_EVENT, 0, wires[3][7:-1])]
    assert deframer.stats.packets == 4
    # The same bytes one at a time give the same items and counters.
    bytewise = CobsDeframer()
    one_by_one = [i for b in first + rest for i in bytewise.feed_stream(bytes((b,)))]
    assert one_by_one == [*items, *tail]
    assert bytewise.stats == deframer.stats


class Session:
    """What the read loop uses of a `DeviceSession`, recording what it is given."""

    def __init__(self, batches: bool) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.stats = SessionStats()
        self.log = SimpleNamespace(debug=lambda *a, **k: None, exception=lambda *a, **k: None)
        self._last_rx = 0.0
        observer = SimpleNamespace(on_event=None)
        if batches:
            observer.on_events = lambda session, packets: self.calls.append(
                ("events", list(packets))
            )
        self.observer = observer

    def _dispatch(self, packet: Packet) -> None:
        self.calls.append(("one", packet))

    def _on_text(self, line: TextLine) -> None:
        self.calls.append(("text", line.text))

    def suspect_reboot(self, why: str) -> None:
        self.calls.append(("reboot", why))


async def read_all(session: Session, *reads: bytes) -> None:
    reader = asyncio.StreamReader()
    link = Link(reader, cast(Any, None), CobsDeframer(), "test")
    task = asyncio.create_task(read_loop(session, link))
    for data in reads:
        reader.feed_data(data)
        for _ in range(5):
            await asyncio.sleep(0)  # each read its own chunk
    reader.feed_eof()
    with pytest.raises(LinkClosedError, match="test: end of stream"):
        await task


@pytest.mark.parametrize("batches", [True, False])
async def test_read_loop_hands_runs_of_events_to_the_observer(batches: bool) -> None:
    first, rest, wires = chunk()
    ack = encode_packet(PacketType.ACK, 7)
    text = b"booting\n"
    session = Session(batches)
    await read_all(session, first, rest + cobs_frame(ack) + text + cobs_frame(wires[0]))
    packets = [Packet(PacketType.DS_EVENT, 0, w[7:-1]) for w in wires]
    reply = Packet(PacketType.ACK, 7)
    if batches:
        # A run ends at a frame error, a reply or a text line, handled in between.
        assert session.calls == [
            ("events", packets[:2]),
            ("events", packets[2:3]),
            ("events", packets[3:4]),
            ("one", reply),
            ("text", "booting"),
            ("events", packets[:1]),
        ]
    else:
        assert session.calls == [
            *[("one", p) for p in packets[:4]],
            ("one", reply),
            ("text", "booting"),
            ("one", packets[0]),
        ]
    assert session.stats.packets_in == 6
    assert session.stats.frame_errors == session.stats.crc_errors == 1
    assert session._last_rx > 0


def board_with_listeners() -> tuple[Board, list[tuple[str, Any]]]:
    bus = EventBus()
    seen: list[tuple[str, Any]] = []
    bus.subscribe(lambda e: seen.append(("all", e)))  # both kinds: interleaved, one by one
    bus.subscribe(
        lambda e: seen.append(("ds-one", e)),
        kinds=(DatastreamUpdated,),
        batch=lambda events: seen.append(("ds-batch", list(events))),
    )
    bus.subscribe(
        lambda e: seen.append(("raw-one", e)),
        kinds=(PacketReceived,),
        batch=lambda events: seen.append(("raw-batch", events)),
    )
    bus.subscribe(lambda e: seen.append(("text", e)), kinds=(TextPrinted,))
    board = Board(Config(), bus, TaskSet())
    return board, seen


def test_board_batch_gives_each_listener_what_emit_gives() -> None:
    board, seen = board_with_listeners()
    session = cast(DeviceSession, SimpleNamespace(hello=HELLO))
    good = [ds_event(TEMPERATURE, 21.5), ds_event(HUMIDITY, 40.0)]
    undeclared = encode_packet(PacketType.DS_EVENT, 0, b"\x09\x00\x00\x00\x00")
    last = ds_event(HUMIDITY, 41.5)
    packets = [Packet(PacketType.DS_EVENT, 0, w[7:-1], w) for w in [*good, undeclared, last]]
    board.on_events(session, packets)
    slugs = {ds.index: slug for slug, ds in board.ds_by_slug.items()}
    at = board.value_times[slugs[TEMPERATURE]]
    assert board.value_times[slugs[HUMIDITY]] == at  # one clock read per run

    def update(index: int, value: float) -> DatastreamUpdated:
        ds = HELLO.datastream(index)
        assert ds is not None
        assert value_decoder(ds)(struct.pack("<f", value)) == value
        return DatastreamUpdated("th", slugs[index], ds, value, at)

    updates = [update(TEMPERATURE, 21.5), update(HUMIDITY, 40.0), update(HUMIDITY, 41.5)]
    received = [PacketReceived("th", p) for p in packets]
    # The undeclared index ends the first run and goes through `on_event`: no typed event,
    # its PacketReceived emitted one by one.
    assert [(who, e if who != "raw-batch" else list(e)) for who, e in seen] == [
        ("all", updates[0]),
        ("all", received[0]),
        ("all", updates[1]),
        ("all", received[1]),
        ("ds-batch", updates[:2]),
        ("raw-batch", received[:2]),
        ("all", received[2]),
        ("raw-one", received[2]),
        ("all", updates[2]),
        ("all", received[3]),
        ("ds-batch", updates[2:]),
        ("raw-batch", received[3:]),
    ]
    run = seen[5][1]
    assert isinstance(run, ReceivedRun) and list(run.packets) == packets[:2]
    assert board.values == {slugs[TEMPERATURE]: 21.5, slugs[HUMIDITY]: 41.5}
    assert board.event_counts == {"DS_EVENT": 4}


def test_a_batch_listener_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    seen: list[Any] = []

    def broken(events: Sequence[Any]) -> None:
        raise RuntimeError("adapter bug")

    bus.subscribe(seen.append, kinds=(DatastreamUpdated,), batch=broken)
    bus.subscribe(seen.append, kinds=(DatastreamUpdated,))
    board = Board(Config(), bus, TaskSet())
    packets = [Packet(PacketType.DS_EVENT, 0, ds_event(TEMPERATURE, 20.0)[7:-1])]
    board.on_events(cast(DeviceSession, SimpleNamespace(hello=HELLO)), packets)
    assert [(e.slug, e.value) for e in seen] == [("temperature_celsius", 20.0)]


async def test_a_serial_device_is_read_64_kib_at_a_time() -> None:
    """serialx asks 256 KiB per `read`, which costs a tty several times a 64 KiB read
    (`docs/architecture.md` §6.1); the bytes arrive all the same."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        link = await SerialTransport(os.ttyname(slave)).open()
        try:
            transport = link.writer.transport
            assert getattr(transport, "max_size", None) == SERIAL_READ_SIZE == 65536
            first, rest, wires = chunk()
            os.write(master, first + rest)
            got: list[Packet] = []
            while len(got) < 4:
                got += [i for i in await link.receive() if isinstance(i, Packet)]
            assert [p.wire for p in got] == wires
        finally:
            await link.close()
    finally:
        os.close(master)
        os.close(slave)
    limit_read_size(object())  # no `max_size`: left alone, no error
