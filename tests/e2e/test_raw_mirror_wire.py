"""`raw_mirror = true`: the bytes on `evt/d1` are the packet bytes the board wrote on the
pty, COBS removed (`docs/topics.md` §7): the bridge republishes them as received."""

from __future__ import annotations

from pathlib import Path

from support.broker import Broker
from support.harness import wait_until
from support.rig import rig

from conduyt_bridge.protocol.constants import PacketType


async def test_mirrored_events_are_the_bytes_the_board_sent(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "thermostat", "wire", raw_mirror=True) as r:
        topic = f"{r.p}/evt/d1"
        await wait_until(lambda: len(r.rec.messages(topic)) >= 3, timeout_s=5)
        written = {p.encode() for p in r.board.sent if p.type == PacketType.DS_EVENT}
        mirrored = r.rec.messages(topic)
        assert all(m.payload in written for m in mirrored)
        assert {(m.qos, m.retain) for m in mirrored} == {(0, False)}
