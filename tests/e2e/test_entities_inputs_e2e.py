"""Input entity options end to end (`docs/entities.md`): a `binary_sensor` with
`pull = "up"` and `inverted`, and a `sensor` with a `threshold`, on the `garage`
simulator board over a real pty with a running bridge and real Mosquitto. The options
reach the board as the PIN_MODE and PIN_SUBSCRIBE packets they stand for, and the
published state follows `inverted` (issue 13: `pull`, `inverted`, `threshold`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker
from support.harness import wait_until
from support.rig import Rig, rig

from conduyt_bridge.protocol.commands import pin_mode, pin_subscribe
from conduyt_bridge.protocol.constants import PacketType, PinMode, SubscribeMode

ENTITIES: list[dict[str, Any]] = [
    {
        "name": "door",
        "kind": "binary_sensor",
        "pin": 2,
        "pull": "up",
        "inverted": True,
        "debounce_ms": 0,
    },
    {"name": "pot", "kind": "sensor", "pin": 4, "interval_ms": 50, "threshold": 10},
]


@pytest.fixture
async def garage(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path, "garage", entities=ENTITIES) as r:
        yield r


async def test_pull_up_and_threshold_reach_the_board(garage: Rig) -> None:
    r = garage
    door_mode = (PacketType.PIN_MODE, pin_mode(2, PinMode.INPUT_PULLUP))
    pot_sub = (PacketType.PIN_SUBSCRIBE, pin_subscribe(4, SubscribeMode.ANALOG_POLL, 50, 10))
    await wait_until(lambda: {door_mode, pot_sub} <= set(r.sent(0)), timeout_s=10)
    # the contact's only mode packet is the pull-up one (no plain INPUT before or after)
    modes = [p for t, p in r.sent(0) if t == PacketType.PIN_MODE and p[0] == 2]
    assert modes == [pin_mode(2, PinMode.INPUT_PULLUP)]


async def test_an_inverted_contact_reports_the_opposite_level(garage: Rig) -> None:
    r = garage
    r.board.set_pin(2, 1)  # pulled up: the contact is open
    got = await r.rec.wait_for(f"{r.p}/entity/door", payload=b"false")
    assert got.retain is False  # a reading, not a setting
    r.board.set_pin(2, 0)  # closed to ground
    await r.rec.wait_for_new(f"{r.p}/entity/door", payload=b"true")


async def test_a_bounce_shorter_than_debounce_ms_is_not_published(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    """`debounce_ms`: a new level counts once it held that long (`docs/entities.md` §2);
    a blip shorter than it (a bouncing contact) publishes nothing."""
    door = {"name": "door", "kind": "binary_sensor", "pin": 2, "debounce_ms": 1000}
    async with rig(mqtt_broker, base_topic, tmp_path, "garage", entities=[door]) as r:
        topic = f"{r.p}/entity/door"
        r.board.set_pin(2, 0)
        await r.rec.wait_for(topic, payload=b"false")
        mark = r.rec.mark()
        r.board.set_pin(2, 1)  # the contact bounces: high for ~0.1 s, then low again
        await asyncio.sleep(0.1)
        r.board.set_pin(2, 0)
        await asyncio.sleep(1.5)  # past the debounce of the blip's last edge
        assert r.rec.since(mark, topic) == []
        r.board.set_pin(2, 1)  # now it holds
        got = await r.rec.wait_for_after(mark, topic, payload=b"true")
        assert got.retain is False
