"""The batch path end to end (`docs/architecture.md` §6.1): one serial read holding
several DS_EVENTs, a frame with a bad CRC between them and the start of a frame at its
end publishes exactly what the per-event path publishes: the same topics, payloads, QoS,
retain flags and order, nothing for the bad frame, the split frame once its end arrives.

Real Mosquitto, the bridge in-process, a simulated board on a pty whose sketch pushes
nothing itself; the test writes the read's bytes onto the board's side of the pty.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

from support.broker import Broker
from support.harness import wait_until
from support.rig import rig

from conduyt_bridge.protocol.cobs_deframer import cobs_frame
from conduyt_bridge.protocol.constants import DatastreamType, PacketType
from conduyt_bridge.protocol.packet import encode_packet
from conduyt_bridge.simulator.profiles import DatastreamSpec, get_profile

QUIET = dataclasses.replace(
    get_profile("firehose"),
    name="quiet",
    datastreams=(
        DatastreamSpec("a", DatastreamType.FLOAT32),  # index 0: QoS 0, not retained
        DatastreamSpec("b", DatastreamType.FLOAT32, writable=True),  # 1: retained, QoS 1
    ),
)


def ds_event(index: int, value: float) -> bytes:
    return encode_packet(PacketType.DS_EVENT, 0, bytes((index,)) + struct.pack("<f", value))


async def test_one_read_of_several_events_publishes_each_in_order(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, QUIET, "q", raw_mirror=True) as r:
        runner = r.pty.runner
        assert runner is not None
        bad = ds_event(0, 99.0)
        bad = bad[:-1] + bytes(((bad[-1] + 1) & 0xFF,))  # CRC off by one
        split = cobs_frame(ds_event(1, 41.5))
        first = b"".join(
            [
                cobs_frame(ds_event(0, 21.5)),
                cobs_frame(ds_event(1, 40.0)),
                cobs_frame(ds_event(0, 22.25)),
                cobs_frame(bad),
                cobs_frame(ds_event(0, 23.0)),
                split[:6],
            ]
        )
        session = r.bridge.sessions["q"]
        mark = r.rec.mark()
        # The board's own writer (a test-only reach into the runner): one write, one read.
        assert await runner._write(first)
        await wait_until(lambda: len(r.rec.since(mark, f"{r.p}/evt/d1")) == 4, timeout_s=5)
        assert session.stats.crc_errors == 1
        assert await runner._write(split[6:])
        await wait_until(lambda: len(r.rec.since(mark, f"{r.p}/evt/d1")) == 5, timeout_s=5)
        got = [
            (m.topic.removeprefix(f"{r.p}/"), m.payload, m.qos, m.retain)
            for m in r.rec.since(mark)
            if "/ds/" in m.topic or "/evt/" in m.topic
        ]
        # Per topic in publish order; across topics the raw mirrors of a run follow its
        # states (the recorder's QoS 1 subscription lets the broker pass QoS 0 ahead of
        # QoS 1, MQTT 5.0 §4.6, so only the per-topic order is compared).
        by_topic: dict[str, list[tuple[bytes, int, bool]]] = {}
        for topic, payload, qos, retain in got:
            by_topic.setdefault(topic, []).append((payload, qos, retain))
        assert by_topic == {
            "ds/a": [(b"21.5", 0, False), (b"22.25", 0, False), (b"23.0", 0, False)],
            "ds/b": [(b"40.0", 1, True), (b"41.5", 1, True)],
            "evt/d1": [
                (ds_event(0, 21.5), 0, False),
                (ds_event(1, 40.0), 0, False),
                (ds_event(0, 22.25), 0, False),
                (ds_event(0, 23.0), 0, False),
                (ds_event(1, 41.5), 0, False),
            ],
        }
        assert session.stats.crc_errors == 1
        assert r.bridge.boards["q"].values == {"a": 23.0, "b": 41.5}
