"""Home Assistant discovery while boards are restarted and renamed over the request API
(`docs/requests.md` §3, `docs/home-assistant.md`): a board's first announcement reads the
broker before it publishes, and a `device/options` restart or a `device/rename` that
lands during that read must never make it publish the board as it was before the change
(a config without the options the file now holds, or the old id's topics on the node the
renamed board keeps). Real bridge in-process, real Mosquitto, `sim://` boards; the read
of the board's node is held open (and then done for real) so the change always lands
inside it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker
from support.mqtt_client import publish
from support.recorder import Received, Recorder
from test_ha_lifecycle_e2e import settled
from test_requests_e2e import Requester, bridge_from, config_text

from conduyt_bridge.northbound.mqtt.connection import MqttConnection

SETPOINT = "ds_setpoint_celsius"
NAMED = {"datastreams": {"setpoint": {"name": "Target"}}}


class HeldRead:
    """Holds every read of `node`'s retained discovery configs until `release()`; the
    read itself then goes to the real broker."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, node: str) -> None:
        self.reached = asyncio.Event()
        self._open = asyncio.Event()
        real = MqttConnection.fetch_retained

        async def held(
            conn: MqttConnection, filters: Iterable[str], *args: Any, **kwargs: Any
        ) -> dict[str, bytes]:
            wanted = list(filters)
            if any(f"/{node}/" in f for f in wanted):
                self.reached.set()
                await self._open.wait()
            return await real(conn, wanted, *args, **kwargs)

        monkeypatch.setattr(MqttConnection, "fetch_retained", held)

    def release(self) -> None:
        self._open.set()


def configs(messages: list[Received], topic: str) -> list[dict[str, Any]]:
    """The discovery configs published on `topic` (removals, `b""`, left out)."""
    return [json.loads(m.payload) for m in messages if m.topic == topic and m.payload]


async def test_options_restart_during_first_announcement_keeps_the_options(
    broker: Broker, base_topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(broker, base_topic, ha=True, devices=["lab"]))
    node = f"bridge-{base_topic}_lab"
    topic = f"{base_topic}-ha/device/{node}/config"
    read = HeldRead(monkeypatch, node)
    async with Recorder(broker, f"{base_topic}/#", f"{base_topic}-ha/#") as rec, bridge_from(path):
        ask = Requester(broker, base_topic, rec)
        await asyncio.wait_for(read.reached.wait(), 10)  # lab's first announcement
        mark = rec.mark()
        changed = await ask("device/options", {"id": "lab", "options": NAMED})
        assert changed["status"] == "ok", changed
        assert changed["data"]["restarted"] is True
        await rec.wait_for_after(mark, f"{base_topic}/lab/status", payload="online", timeout=10)
        read.release()
        await rec.wait_for_after(mark, topic, lambda p: b'"Target"' in p, timeout=10)
        await settled(rec)
        published = configs(rec.since(mark), topic)
    assert published
    assert [c["cmps"][SETPOINT].get("name") for c in published] == ["Target"] * len(published)


async def test_rename_during_first_announcement_publishes_only_the_renamed_board(
    broker: Broker, base_topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The acceptance tester's sequence: a board added, given options, renamed at once.
    path = tmp_path / "config.toml"
    path.write_text(config_text(broker, base_topic, ha=True, devices=["lab"]))
    ha = f"{base_topic}-ha"
    node = f"bridge-{base_topic}_lab"
    topic = f"{ha}/device/{node}/config"
    read = HeldRead(monkeypatch, node)
    async with Recorder(broker, f"{base_topic}/#", f"{ha}/#") as rec, bridge_from(path):
        ask = Requester(broker, base_topic, rec)
        await asyncio.wait_for(read.reached.wait(), 10)  # lab's first announcement
        mark = rec.mark()
        changed = await ask("device/options", {"id": "lab", "options": NAMED})
        assert changed["status"] == "ok", changed
        renamed = await ask("device/rename", {"from": "lab", "to": "lab2"})
        assert renamed["status"] == "ok", renamed
        await rec.wait_for_after(mark, f"{base_topic}/lab2/status", payload="online", timeout=10)
        read.release()
        await rec.wait_for_after(mark, topic, lambda p: b"lab2/ds" in p, timeout=10)
        await settled(rec)
        published = configs(rec.since(mark), topic)

        # HA restarts: the bridge publishes every node it announced once, lab2's alone.
        again = rec.mark()
        await publish(broker, f"{ha}/status", b"online")
        await rec.wait_for_after(again, topic, timeout=10)
        await settled(rec)
        republished = configs(rec.since(again), topic)
    state_topic = f"{base_topic}/lab2/ds/setpoint_celsius"
    setpoints = [c["cmps"][SETPOINT] for c in published]
    seen = [(s.get("name"), s["state_topic"]) for s in setpoints]
    assert seen == [("Target", state_topic)] * len(seen)
    assert republished == published[-1:]
