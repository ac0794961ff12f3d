"""Read coalescing end to end (`docs/architecture.md` §6.1): a streaming board on a real
pty is read in batches with nothing lost or reordered, a reply is never held back by a
pause, a quiet board is never paused, and a board unplugged during a pause goes offline
and comes back. Real Mosquitto, the bridge in-process, simulated boards on ptys."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import structlog
from support.broker import Broker
from support.harness import wait_until
from support.rig import rig

from conduyt_bridge.core.events import DatastreamUpdated
from conduyt_bridge.protocol.constants import PacketType


async def test_a_streaming_board_is_read_in_batches_losing_nothing(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "firehose", "fh", read_coalesce_ms=20) as r:
        values: list[Any] = []
        r.bridge.bus.subscribe(lambda e: values.append(e.value), kinds=(DatastreamUpdated,))
        stats = r.bridge.sessions["fh"].stats
        reads0, packets0 = stats.reads_in, stats.packets_in
        await asyncio.sleep(1.0)
        reads, packets = stats.reads_in - reads0, stats.packets_in - packets0
        # at most one read per 20 ms pause plus the one that starts it: ~100 in 1 s, and
        # each carries many frames (a pty read per write without coalescing: ~1-5)
        assert reads <= 150, reads
        assert packets >= 10 * reads, (packets, reads)
        # every DS_EVENT of the counter arrived, in order, across the batched reads
        assert len(values) >= 1000
        assert values == [values[0] + i for i in range(len(values))]
        # and went out on MQTT in order (QoS 0: the recorder may miss some, never reorder)
        got = [float(m.payload) for m in r.rec.messages(f"{r.p}/ds/value")]
        assert len(got) > 100
        assert got == sorted(got) and len(set(got)) == len(got)


async def test_a_reply_is_not_held_back_while_the_board_streams(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "firehose", "fh", read_coalesce_ms=250) as r:
        session = r.bridge.sessions["fh"]
        await asyncio.sleep(0.5)
        reads0, packets0 = session.stats.reads_in, session.stats.packets_in
        await asyncio.sleep(1.0)
        reads = session.stats.reads_in - reads0
        # pauses of 250 ms, each followed by 4 KiB reads until the backlog is read
        assert (session.stats.packets_in - packets0) / reads >= 50, reads
        took: list[float] = []
        for _ in range(10):
            started = time.monotonic()
            reply = await session.request(PacketType.PING)
            took.append(time.monotonic() - started)
            assert reply.type == PacketType.PONG
            await asyncio.sleep(0.05)
        # a send ends the pause and the link is read at once while the reply is awaited
        assert sorted(took)[5] < 0.1, took
        assert max(took) < 0.25, took


async def test_a_quiet_board_is_never_paused(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(
        mqtt_broker, base_topic, tmp_path, "thermostat", "th", read_coalesce_ms=250
    ) as r:
        link = r.bridge.sessions["th"]._link
        assert link is not None and link.coalescer is not None
        for value in ("20.5", "21.5", "22.5"):
            started = time.monotonic()
            mark = r.rec.mark()
            await r.request("ds/setpoint_celsius/set", value)
            await r.rec.wait_for_after(mark, f"{r.p}/ds/setpoint_celsius", payload=value)
            assert time.monotonic() - started < 0.2
        await asyncio.sleep(0.5)
        paused, reads = link.coalescer.paused_reads, link.reads
        await asyncio.sleep(2.5)  # the thermostat's own pushes: one burst a second
        assert link.reads - reads >= 2
        assert link.coalescer.paused_reads == paused


async def test_pauses_never_cap_how_fast_a_board_is_read(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    """A pty hands over at most 4 KiB per read: with long pauses a fast board would be
    read at 4 KiB per pause (16 KB/s at 250 ms), its bytes piling up in the kernel until
    it is held back (a UART without flow control would lose them), unless a large read
    is followed by the next at once (`FULL_READ`)."""
    async with rig(
        mqtt_broker,
        base_topic,
        tmp_path,
        "firehose",
        "fh",
        loop_rate_hz=5_000,  # 75 KB/s of DS_EVENTs
        read_coalesce_ms=250,
    ) as r:

        def lag() -> float:
            """DS_EVENTs the board pushed that the bridge has not read yet."""
            sent = float(r.board.datastream_values["value"])  # the counter: one per push
            return sent - float(r.bridge.boards["fh"].values.get("value", 0.0))

        await asyncio.sleep(1.0)
        before = lag()
        await asyncio.sleep(2.0)
        after = lag()
        # read as fast as pushed: the backlog stays at about one pause's worth (1,250);
        # capped at 4 KiB per pause the pty fills (~4,000 events wait, 64 KiB) and holds
        # the board back to ~1,100 events/s
        assert max(before, after) < 3_000, (before, after)


async def test_a_board_unplugged_during_a_pause_goes_offline_and_comes_back(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with rig(
            mqtt_broker, base_topic, tmp_path, "firehose", "fh", read_coalesce_ms=250
        ) as r:
            session = r.bridge.sessions["fh"]
            link = session._link
            assert link is not None and link.coalescer is not None
            await wait_until(lambda: link.coalescer is not None and link.coalescer.pausing)
            mark = r.rec.mark()
            await r.pty.unplug()
            await r.rec.wait_for_after(mark, f"{r.p}/status", payload=b"offline", timeout=5)
            assert link.closed and not link.coalescer.pausing
            await r.pty.replug()
            await r.rec.wait_for_after(mark, f"{r.p}/status", payload=b"online", timeout=10)
            await r.rec.wait_for_new(f"{r.p}/ds/value", timeout=5)
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
