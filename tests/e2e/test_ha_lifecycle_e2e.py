"""Home Assistant lifecycles that must not lose a user's setup, end to end against the
real broker: a `discovery_mode` switch uses HA's `migrate_discovery` hand-over (exact
retained sequence), the ownership record clears what a removed board or a former
`client_id` left behind, another gateway's topics stay, and writable numbers advertise
exactly what the bridge accepts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterable
from typing import Any

import aiomqtt
import pytest
from support.broker import Broker
from support.ha_schema import validate_message
from support.harness import make_settings, running_bridge, wait_until
from support.mqtt_client import publish, retained_snapshot
from support.recorder import Received, Recorder

from conduyt_bridge.app.config import Settings
from conduyt_bridge.northbound.mqtt.connection import MqttConnection

MIGRATE = b'{"migrate_discovery":true}'
TH = {"id": "th", "port": "sim://thermostat"}
KT = {"id": "kt", "port": "sim://kitchen"}


def settings(
    broker: Broker,
    base_topic: str,
    devices: list[dict[str, Any]],
    mode: str = "device",
    client_id: str | None = None,
) -> Settings:
    return make_settings(
        broker,
        base_topic,
        devices,
        mqtt={"client_id": client_id or f"bridge-{base_topic}"},
        homeassistant={
            "enabled": True,
            "discovery_prefix": f"{base_topic}-ha",
            "discovery_mode": mode,
        },
    )


async def run_until_announced(broker: Broker, s: Settings) -> dict[str, bytes]:
    """Run a bridge until every board's discovery and the ownership record are on the
    broker; return the retained discovery configs (topic → payload) after it stopped."""
    prefix = s.homeassistant.discovery_prefix
    node = s.mqtt.client_id
    base = s.bridge.base_topic
    record = f"{base}/bridge/owned/{node}"
    async with Recorder(broker, f"{prefix}/#", record) as rec, running_bridge(s):
        await rec.wait_for(record, timeout=10)
        for dev in [d.device_id for d in s.devices] + ["bridge"]:
            await rec.wait_for(f"{prefix}/+/{node}_{dev}/#", timeout=10)
        await settled(rec)
    return await retained_snapshot(broker, f"{prefix}/#")


async def settled(rec: Recorder, quiet_s: float = 0.3) -> None:
    """Wait until `rec` received nothing for `quiet_s` (a node's configs come in a burst)."""
    while True:
        count = len(rec.messages())
        await asyncio.sleep(quiet_s)
        if len(rec.messages()) == count:
            return


def sequence(messages: list[Received], node: str) -> list[tuple[str, bytes, bool]]:
    return [(m.topic, m.payload, m.retain) for m in messages if f"/{node}/" in m.topic]


async def record_switch(
    broker: Broker, s: Settings, before: dict[str, bytes]
) -> tuple[list[Received], dict[str, bytes]]:
    """Run `s` on a broker holding `before`; the live discovery messages it published and
    the retained configs afterwards."""
    prefix = s.homeassistant.discovery_prefix
    async with Recorder(broker, f"{prefix}/#") as rec:
        await wait_until(lambda: len(rec.messages()) >= len(before))
        mark = rec.mark()
        async with running_bridge(s):
            node = s.mqtt.client_id
            # The hand-over ends with the old topics emptied: wait for the last of them.
            for dev in ("th", "bridge"):
                old_topics = [t for t in before if f"/{node}_{dev}/" in t]
                for topic in old_topics:
                    await rec.wait_for_after(mark, topic, timeout=10, payload=b"")
        live = rec.since(mark)
    return live, await retained_snapshot(broker, f"{prefix}/#")


def check_handover(
    live: list[Received],
    node: str,
    old: dict[str, bytes],
    new_topics: set[str],
) -> None:
    seq = sequence(live, node)
    old_topics = {t for t in old if f"/{node}/" in t}
    n = len(old_topics)
    # 1. `{"migrate_discovery": true}`, retained, on every old topic;
    assert {(t, p, r) for t, p, r in seq[:n]} == {(t, MIGRATE, True) for t in old_topics}
    # 2. then the new configs, retained and valid;
    configs = seq[n : n + len(new_topics)]
    assert {t for t, _, _ in configs} == new_topics
    for topic, payload, retain in configs:
        assert retain is True and payload not in (b"", MIGRATE), topic
    # 3. then every old topic emptied (retained), and nothing else.
    assert {(t, p, r) for t, p, r in seq[n + len(new_topics) :]} == {
        (t, b"", True) for t in old_topics
    }
    assert len(seq) == 2 * n + len(new_topics)


async def test_mode_switch_uses_migrate_discovery_both_ways(
    mqtt_broker: Broker, base_topic: str
) -> None:
    components = settings(mqtt_broker, base_topic, [TH], mode="components")
    prefix = components.homeassistant.discovery_prefix
    cid = components.mqtt.client_id
    board_node, bridge_node = f"{cid}_th", f"{cid}_bridge"
    old = await run_until_announced(mqtt_broker, components)
    old_board = {t: p for t, p in old.items() if f"/{board_node}/" in t}
    assert len(old_board) == 5 and all(t.count("/") == 4 for t in old_board)

    # components → device
    device = settings(mqtt_broker, base_topic, [TH], mode="device")
    live, after = await record_switch(mqtt_broker, device, old)
    device_topic = f"{prefix}/device/{board_node}/config"
    check_handover(live, board_node, old, {device_topic})
    check_handover(live, bridge_node, old, {f"{prefix}/device/{bridge_node}/config"})
    assert set(after) == {device_topic, f"{prefix}/device/{bridge_node}/config"}
    for topic, payload in after.items():
        assert validate_message(topic, payload, prefix) == []
    # The unique ids HA keys its registry on (entity ids, areas, renames) are unchanged.
    cmps = json.loads(after[device_topic])["cmps"]
    assert {c["unique_id"] for c in cmps.values()} == {
        json.loads(p)["unique_id"] for p in old_board.values()
    }

    # device → components: HA's documented rollback, the same three steps.
    live, back = await record_switch(mqtt_broker, components, after)
    check_handover(live, board_node, after, set(old_board))
    assert set(back) == set(old)


async def test_removed_board_is_cleared_and_other_gateways_keep_theirs(
    mqtt_broker: Broker, base_topic: str
) -> None:
    # Another gateway with its own base topic and client id, on the same broker.
    other_base = f"{base_topic}-gw2"
    other = settings(mqtt_broker, other_base, [TH, KT], client_id=f"bridge-{other_base}")
    other_discovery = await run_until_announced(mqtt_broker, other)
    other_state = await retained_snapshot(mqtt_broker, f"{other_base}/#")
    # A third gateway sharing OUR base topic (another client id, other board ids).
    peer = make_settings(
        mqtt_broker,
        base_topic,
        [{"id": "peer", "port": "sim://thermostat"}],
        mqtt={"client_id": f"peer-{base_topic}"},
        homeassistant={"enabled": True, "discovery_prefix": f"{base_topic}-ha"},
    )
    await run_until_announced(mqtt_broker, peer)

    both = settings(mqtt_broker, base_topic, [TH, KT])
    prefix = both.homeassistant.discovery_prefix
    cid = both.mqtt.client_id
    await run_until_announced(mqtt_broker, both)
    assert f"{prefix}/device/{cid}_kt/config" in await retained_snapshot(mqtt_broker, f"{prefix}/#")
    assert await retained_snapshot(mqtt_broker, f"{base_topic}/kt/#")
    peer_before = await retained_snapshot(mqtt_broker, f"{base_topic}/peer/#")
    peer_discovery = {
        t: p
        for t, p in (await retained_snapshot(mqtt_broker, f"{prefix}/#")).items()
        if f"/peer-{base_topic}_" in t
    }
    assert peer_before and peer_discovery

    # Restart without `kt`: its discovery config and every retained topic of it go.
    only_th = settings(mqtt_broker, base_topic, [TH])
    record = f"{base_topic}/bridge/owned/{cid}"
    async with Recorder(mqtt_broker, f"{prefix}/#", f"{base_topic}/kt/#", record) as rec:
        await wait_until(lambda: bool(rec.messages(record)))
        mark = rec.mark()
        async with running_bridge(only_th):
            cleared = await rec.wait_for_after(
                mark, f"{prefix}/device/{cid}_kt/config", payload=b"", timeout=10
            )
            assert cleared.retain is True
            published = await rec.wait_for_after(mark, record, timeout=10)
            await wait_until(lambda: rec.since(mark, f"{base_topic}/kt/#") != [])
    assert json.loads(published.payload) == {
        "v": 1,
        "client_id": cid,
        "host": socket.gethostname(),
        "prefix": prefix,
        "boards": {"th": "sim://thermostat"},
        "nodes": [f"{cid}_bridge", f"{cid}_th"],
    }
    assert published.retain is True
    # The clearing happened before the new record: a crash in between clears again.
    kt_cleared = rec.since(mark, f"{base_topic}/kt/#")
    assert kt_cleared and all(m.payload == b"" and m.retain for m in kt_cleared)
    assert await retained_snapshot(mqtt_broker, f"{base_topic}/kt/#") == {}
    discovery = await retained_snapshot(mqtt_broker, f"{prefix}/#")
    assert f"{prefix}/device/{cid}_kt/config" not in discovery
    assert f"{prefix}/device/{cid}_th/config" in discovery
    # Never another gateway's topics: neither the peer on our base nor the other base.
    assert {t: p for t, p in discovery.items() if f"/peer-{base_topic}_" in t} == peer_discovery
    assert await retained_snapshot(mqtt_broker, f"{base_topic}/peer/#") == peer_before
    assert await retained_snapshot(mqtt_broker, f"{other_base}-ha/#") == other_discovery
    assert set(await retained_snapshot(mqtt_broker, f"{other_base}/#")) == set(other_state)


async def test_changed_client_id_clears_the_old_identity(
    mqtt_broker: Broker, base_topic: str
) -> None:
    first = settings(mqtt_broker, base_topic, [TH], client_id=f"old-{base_topic}")
    prefix = first.homeassistant.discovery_prefix
    await run_until_announced(mqtt_broker, first)
    old_record = f"{base_topic}/bridge/owned/old-{base_topic}"
    assert old_record in await retained_snapshot(mqtt_broker, f"{base_topic}/bridge/owned/+")

    renamed = settings(mqtt_broker, base_topic, [TH], client_id=f"new-{base_topic}")
    async with Recorder(mqtt_broker, f"{prefix}/#", old_record) as rec:
        await wait_until(lambda: bool(rec.messages(old_record)))
        mark = rec.mark()
        async with running_bridge(renamed):
            await rec.wait_for_after(mark, old_record, payload=b"", timeout=10)
            await rec.wait_for_after(
                mark, f"{prefix}/device/new-{base_topic}_th/config", timeout=10
            )
    discovery = await retained_snapshot(mqtt_broker, f"{prefix}/#")
    # Every board shows up once in HA: only the new identity's configs are left.
    assert set(discovery) == {
        f"{prefix}/device/new-{base_topic}_th/config",
        f"{prefix}/device/new-{base_topic}_bridge/config",
    }
    records = await retained_snapshot(mqtt_broker, f"{base_topic}/bridge/owned/+")
    assert set(records) == {f"{base_topic}/bridge/owned/new-{base_topic}"}
    # The board's own retained state is the renamed bridge's now, and stays.
    assert f"{base_topic}/th/status" in await retained_snapshot(mqtt_broker, f"{base_topic}/th/#")


async def test_numbers_advertise_exactly_what_is_accepted(
    mqtt_broker: Broker, base_topic: str
) -> None:
    s = settings(mqtt_broker, base_topic, [TH, KT])
    prefix = s.homeassistant.discovery_prefix
    cid = s.mqtt.client_id
    async with Recorder(mqtt_broker, f"{prefix}/#", f"{base_topic}/#") as rec, running_bridge(s):
        kitchen = (await rec.wait_for(f"{prefix}/device/{cid}_kt/config", timeout=10)).json()
        light = kitchen["cmps"]["ds_light_percent"]
        assert (light["p"], light["min"], light["max"], light["step"], light["mode"]) == (
            "number",
            0,
            100,
            1,
            "slider",
        )
        thermostat = (await rec.wait_for(f"{prefix}/device/{cid}_th/config", timeout=10)).json()
        setpoint = thermostat["cmps"]["ds_setpoint_celsius"]
        assert (setpoint["min"], setpoint["max"]) == (-1e9, 1e9)
        await rec.wait_for(f"{base_topic}/kt/status", payload=b"online", timeout=10)
        await rec.wait_for(f"{base_topic}/th/status", payload=b"online", timeout=10)

        # The advertised maximum is accepted ...
        await publish(mqtt_broker, f"{base_topic}/kt/ds/light_percent/set", b"100")
        await rec.wait_for(f"{base_topic}/kt/ds/light_percent", payload=b"100", timeout=5)
        # ... one above it is refused, with a message.
        await publish(mqtt_broker, f"{base_topic}/kt/ds/light_percent/set", b"101")
        error = await rec.wait_for(f"{base_topic}/kt/error", timeout=5)
        assert error.json() == {
            "topic": f"{base_topic}/kt/ds/light_percent/set",
            "error": "capability",
            "code": None,
            "name": "OUT_OF_RANGE",
            "message": "datastream 'light' (UINT8): 101 is out of range 0..100 (unit %)",
        }
        await publish(mqtt_broker, f"{base_topic}/th/ds/setpoint_celsius/set", b"1e9")
        state = await rec.wait_for(
            f"{base_topic}/th/ds/setpoint_celsius", lambda b: float(b) == 1e9, timeout=5
        )
        assert state.retain is True
        await publish(mqtt_broker, f"{base_topic}/th/ds/setpoint_celsius/set", b"-1000000001")
        error = await rec.wait_for(f"{base_topic}/th/error", timeout=5)
        assert error.json()["message"] == (
            "datastream 'setpoint' (FLOAT32): -1000000001 is out of range -1000000000..1000000000"
        )


async def test_entities_dropped_while_down_get_removal_placeholders(
    mqtt_broker: Broker, base_topic: str
) -> None:
    s = settings(mqtt_broker, base_topic, [TH])
    prefix = s.homeassistant.discovery_prefix
    node = f"{s.mqtt.client_id}_th"
    topic = f"{prefix}/device/{node}/config"
    clean = json.loads((await run_until_announced(mqtt_broker, s))[topic])
    # What an earlier firmware on the port announced: one datastream more.
    assert "ds_pressure_hpa" not in clean["cmps"]
    extra = {"p": "sensor", "unique_id": f"{node}_ds_pressure_hpa", "name": "pressure"}
    old = {**clean, "cmps": {**clean["cmps"], "ds_pressure_hpa": extra}}
    await publish(mqtt_broker, topic, json.dumps(old), retain=True)

    async with Recorder(mqtt_broker, topic) as rec:
        await rec.wait_for(topic, lambda b: "ds_pressure_hpa" in json.loads(b)["cmps"])
        mark = rec.mark()
        async with running_bridge(s):
            await rec.wait_for_after(mark, topic, lambda b: json.loads(b) == clean, timeout=10)
            await settled(rec)
        live = [(m.topic, json.loads(m.payload), m.retain) for m in rec.since(mark)]
    # HA's documented removal of one component, then the clean config (retained last).
    placeholder = {**clean, "cmps": {**clean["cmps"], "ds_pressure_hpa": {"p": "sensor"}}}
    assert live == [(topic, placeholder, True), (topic, clean, True)]
    assert json.loads((await retained_snapshot(mqtt_broker, topic))[topic]) == clean


async def test_failed_read_of_old_configs_defers_the_announcement(
    restartable_broker: Broker, base_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = restartable_broker
    components = settings(broker, base_topic, [TH], mode="components")
    prefix = components.homeassistant.discovery_prefix
    board_node = f"{components.mqtt.client_id}_th"
    old = await run_until_announced(broker, components)
    old_board = {t: p for t, p in old.items() if f"/{board_node}/" in t}
    assert len(old_board) == 5

    # The link drops while the board's old configs are read (the broker itself is real).
    real = MqttConnection.fetch_retained
    failed: list[list[str]] = []

    async def read_fails_once(
        self: MqttConnection, filters: Iterable[str], *args: Any, **kwargs: Any
    ) -> dict[str, bytes]:
        wanted = list(filters)
        if not failed and any(f"/{board_node}/" in f for f in wanted):
            failed.append(wanted)
            raise aiomqtt.MqttError("Disconnected during message iteration")
        return await real(self, wanted, *args, **kwargs)

    monkeypatch.setattr(MqttConnection, "fetch_retained", read_fails_once)
    device = settings(broker, base_topic, [TH], mode="device")
    device_topic = f"{prefix}/device/{board_node}/config"
    async with Recorder(broker, f"{prefix}/#", reconnect=True) as rec:
        await wait_until(lambda: len(rec.messages()) >= len(old))
        mark = rec.mark()
        async with running_bridge(device):
            await wait_until(lambda: bool(failed), timeout_s=10)
            await rec.wait_for_after(
                mark, f"{prefix}/device/{components.mqtt.client_id}_bridge/config", timeout=10
            )
            await settled(rec)
            # Nothing for the board: announcing it now would skip the hand-over.
            assert sequence(rec.since(mark), board_node) == []
            await broker.arestart()
            for topic in old_board:
                await rec.wait_for_after(mark, topic, timeout=20, payload=b"")
            await settled(rec)
        live = rec.since(mark)
    check_handover(live, board_node, old_board, {device_topic})
    after = await retained_snapshot(broker, f"{prefix}/#")
    assert {t for t in after if f"/{board_node}/" in t} == {device_topic}
