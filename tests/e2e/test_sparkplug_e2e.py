"""The Sparkplug B edge node against a real broker (`docs/sparkplug.md`). Every payload
is read with the independent decoder (`support.sparkplug_decoder`)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support import sparkplug_decoder as spd
from support.broker import Broker
from support.harness import make_settings, pty_board_at, running_bridge, spawn_cli, wait_until
from support.mqtt_client import publish
from support.recorder import Received, Recorder

from conduyt_bridge.app.config import Settings
from conduyt_bridge.errors import ConduytCapabilityError

EDGE = "edge"
FLOAT = spd.DATATYPE["Float"]


def spb_settings(broker: Broker, base: str, devices: list[dict[str, Any]], **spb: Any) -> Settings:
    return make_settings(
        broker,
        base,
        devices,
        sparkplug={"enabled": True, "group_id": base, "edge_node_id": EDGE, **spb},
    )


def topic(base: str, kind: str, dev: str | None = None) -> str:
    return f"spBv1.0/{base}/{kind}/{EDGE}" + (f"/{dev}" if dev else "")


def decoded(msg: Received) -> Any:
    return spd.decode(msg.payload)


def all_timestamped(payload: Any) -> bool:
    """tck-id-payloads-name-birth-data-requirement: every metric has a timestamp."""
    return all(m.HasField("timestamp") and m.timestamp > 0 for m in payload.metrics)


def check_seqs(messages: list[Received]) -> None:
    """Every message after an NBIRTH takes the next seq (mod 256); NDEATH has none."""
    expected: int | None = None
    for msg in messages:
        kind = msg.topic.split("/")[2]
        if kind in ("NCMD", "DCMD"):
            continue  # published by the test, not the edge node
        payload = decoded(msg)
        if kind == "NDEATH":
            assert not payload.HasField("seq")
            continue
        if kind == "NBIRTH":
            assert payload.seq == 0
        elif expected is not None:
            assert payload.seq == expected, (msg.topic, payload.seq, expected)
        expected = (payload.seq + 1) % 256


async def test_births_data_commands_rebirth_and_clean_death(
    mqtt_broker: Broker, base_topic: str
) -> None:
    settings = spb_settings(mqtt_broker, base_topic, [{"id": "th", "port": "sim://thermostat"}])
    async with Recorder(mqtt_broker, f"spBv1.0/{base_topic}/#", f"{base_topic}/th/#") as rec:
        async with running_bridge(settings) as bridge:
            nbirth = decoded(await rec.wait_for(topic(base_topic, "NBIRTH"), timeout=10))
            assert nbirth.seq == 0 and nbirth.timestamp > 0
            node = spd.by_name(nbirth)
            bdseq = node["bdSeq"].long_value
            assert node["bdSeq"].datatype == spd.DATATYPE["Int64"]
            rebirth = node["Node Control/Rebirth"]
            assert rebirth.datatype == spd.DATATYPE["Boolean"] and rebirth.boolean_value is False
            # tck-id-operational-behavior-data-commands-rebirth-name-aliases
            assert not rebirth.HasField("alias")
            assert node["Boards/th/online"].datatype == spd.DATATYPE["Boolean"]
            assert node["Boards/th/packets_in"].datatype == spd.DATATYPE["UInt64"]
            aliases = [m.alias for m in nbirth.metrics if m.name != "Node Control/Rebirth"]
            assert all_timestamped(nbirth)

            dbirth = decoded(await rec.wait_for(topic(base_topic, "DBIRTH", "th"), timeout=10))
            dev = spd.by_name(dbirth)
            temp, setpoint, heater = (
                dev["temperature_celsius"],
                dev["setpoint_celsius"],
                dev["heater"],
            )
            assert temp.datatype == FLOAT and setpoint.datatype == FLOAT
            assert heater.datatype == spd.DATATYPE["Boolean"]
            assert spd.properties(temp) == {"engUnit": "celsius", "readOnly": True, "retain": False}
            assert spd.properties(setpoint)["readOnly"] is False
            aliases += [m.alias for m in dbirth.metrics]
            assert all_timestamped(dbirth)
            assert len(set(aliases)) == len(aliases) and 0 not in aliases

            # DDATA: aliases only, the value, seq continuing.
            ddata = decoded(
                await rec.wait_for(
                    topic(base_topic, "DDATA", "th"),
                    lambda p: spd.decode(p).metrics[0].alias == temp.alias,
                    timeout=5,
                )
            )
            assert not ddata.metrics[0].HasField("name") and all_timestamped(ddata)
            assert isinstance(ddata.metrics[0].float_value, float)

            # DCMD write of the setpoint: DDATA with the new value, the board changed, and
            # the Conduyt layout's state too.
            mark = rec.mark()
            dcmd = topic(base_topic, "DCMD", "th")
            cmd = [{"alias": setpoint.alias, "datatype": FLOAT, "float_value": 23.5}]
            await publish(mqtt_broker, dcmd, spd.encode_command(cmd))
            await rec.wait_for_after(
                mark,
                topic(base_topic, "DDATA", "th"),
                lambda p: any(
                    m.alias == setpoint.alias and m.float_value == 23.5
                    for m in spd.decode(p).metrics
                ),
            )
            await rec.wait_for_after(mark, f"{base_topic}/th/ds/setpoint_celsius", payload=b"23.5")
            assert bridge.boards["th"].values["setpoint_celsius"] == 23.5

            # Refusals: read-only, out of range: no write, the core's exact refusal.
            mark = rec.mark()
            cmd = [{"name": "temperature_celsius", "datatype": FLOAT, "float_value": 1.0}]
            await publish(mqtt_broker, dcmd, spd.encode_command(cmd))
            refusal = await rec.wait_for_after(mark, f"{base_topic}/th/error")
            assert json.loads(refusal.payload) == {
                "topic": f"{dcmd} temperature_celsius",
                "error": "capability",
                "code": None,
                "name": "DATASTREAM_READONLY",
                "message": "datastream 'temperature' is read-only",
            }
            board = bridge.boards["th"]
            with pytest.raises(ConduytCapabilityError) as expected:
                board.encode(board.datastream("setpoint_celsius"), 1e39)
            mark = rec.mark()
            cmd = [
                {"alias": setpoint.alias, "datatype": spd.DATATYPE["Double"], "double_value": 1e39}
            ]
            await publish(mqtt_broker, dcmd, spd.encode_command(cmd))
            refusal = await rec.wait_for_after(mark, f"{base_topic}/th/error")
            doc = json.loads(refusal.payload)
            assert (doc["name"], doc["message"]) == ("OUT_OF_RANGE", str(expected.value))
            assert board.values["setpoint_celsius"] == 23.5

            # Hostile commands: ignored, counted, the bridge keeps going.
            await publish(mqtt_broker, topic(base_topic, "NCMD"), b"\xff\xfe garbage")
            await publish(mqtt_broker, dcmd, b"\x0a" * 200_000)
            await publish(mqtt_broker, topic(base_topic, "DCMD", "nosuch"), b"")

            # NCMD Rebirth by an alias (the metric has none; a stale one of another metric):
            # no rebirth, counted.
            mark = rec.mark()
            cmd = [{"alias": node["bdSeq"].alias, "datatype": 11, "boolean_value": True}]
            await publish(mqtt_broker, topic(base_topic, "NCMD"), spd.encode_command(cmd))
            await rec.assert_nothing(topic(base_topic, "NBIRTH"), duration=0.5)
            # NCMD Rebirth: NBIRTH (seq 0, same bdSeq) and the DBIRTH again.
            mark = rec.mark()
            cmd = [{"name": "Node Control/Rebirth", "datatype": 11, "boolean_value": True}]
            await publish(mqtt_broker, topic(base_topic, "NCMD"), spd.encode_command(cmd))
            again = decoded(await rec.wait_for_after(mark, topic(base_topic, "NBIRTH")))
            assert again.seq == 0
            again_node = spd.by_name(again)
            assert again_node["bdSeq"].long_value == bdseq
            assert again_node["Sparkplug/commands_ignored"].long_value >= 4
            assert again_node["Sparkplug/commands_refused"].long_value == 2
            assert not again_node["Node Control/Rebirth"].HasField("alias")
            redev = decoded(await rec.wait_for_after(mark, topic(base_topic, "DBIRTH", "th")))
            assert spd.by_name(redev)["setpoint_celsius"].float_value == 23.5
            assert spd.by_name(redev)["setpoint_celsius"].alias == setpoint.alias
            mark = rec.mark()
        # Clean stop: DDEATH, then NDEATH with the connection's bdSeq.
        death = decoded(await rec.wait_for_after(mark, topic(base_topic, "NDEATH"), timeout=5))
        assert spd.by_name(death)["bdSeq"].long_value == bdseq
        await rec.wait_for_after(mark, topic(base_topic, "DDEATH", "th"), timeout=5)
        check_seqs(rec.messages(f"spBv1.0/{base_topic}/+/{EDGE}/#"))


async def test_seq_wraps_after_255(mqtt_broker: Broker, base_topic: str) -> None:
    settings = spb_settings(mqtt_broker, base_topic, [{"id": "fh", "port": "sim://firehose"}])
    async with Recorder(mqtt_broker, f"spBv1.0/{base_topic}/#") as rec:
        async with running_bridge(settings):
            await rec.wait_for(
                topic(base_topic, "DDATA", "fh"), lambda p: spd.decode(p).seq == 255, timeout=20
            )
            await rec.wait_for(
                topic(base_topic, "DDATA", "fh"),
                lambda p: spd.decode(p).seq == 0,
                timeout=5,
            )
        check_seqs(rec.messages(f"spBv1.0/{base_topic}/+/{EDGE}/#"))


async def test_lost_board_dies_and_is_born_again(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with pty_board_at(tmp_path / "ttyTH", "thermostat", seed=3) as pb:
        assert pb.link is not None
        settings = spb_settings(mqtt_broker, base_topic, [{"id": "th", "port": str(pb.link)}])
        async with Recorder(mqtt_broker, f"spBv1.0/{base_topic}/#") as rec:
            async with running_bridge(settings):
                await rec.wait_for(topic(base_topic, "DBIRTH", "th"), timeout=10)
                mark = rec.mark()
                await pb.unplug()
                death = await rec.wait_for_after(
                    mark, topic(base_topic, "DDEATH", "th"), timeout=10
                )
                assert decoded(death).metrics == []
                await pb.replug()
                await rec.wait_for_after(mark, topic(base_topic, "DBIRTH", "th"), timeout=15)
                offline_then_online = [
                    spd.by_name(decoded(m)) for m in rec.since(mark, topic(base_topic, "NDATA"))
                ]
                assert offline_then_online  # the node's Boards/th/online changed
            check_seqs(rec.messages(f"spBv1.0/{base_topic}/+/{EDGE}/#"))


async def test_primary_host_state_gates_the_birth(mqtt_broker: Broker, base_topic: str) -> None:
    host = f"scada-{base_topic}"
    state = f"spBv1.0/STATE/{host}"
    settings = spb_settings(
        mqtt_broker, base_topic, [{"id": "th", "port": "sim://thermostat"}], primary_host_id=host
    )
    rebirth = spd.encode_command([{"name": "Node Control/Rebirth", "boolean_value": True}])
    try:
        async with (
            Recorder(mqtt_broker, f"spBv1.0/{base_topic}/#") as rec,
            running_bridge(settings) as bridge,
        ):
            await wait_until(lambda: bridge.boards["th"].online, timeout_s=10)
            # No STATE yet: no birth, not even asked for by NCMD.
            await publish(mqtt_broker, topic(base_topic, "NCMD"), rebirth)
            await rec.assert_nothing(f"spBv1.0/{base_topic}/#", duration=1.0)
            ts = int(time.time() * 1000)
            online = json.dumps({"online": True, "timestamp": float(ts)})  # 1.7e12 style
            await publish(mqtt_broker, state, online, retain=True)
            birth = decoded(await rec.wait_for(topic(base_topic, "NBIRTH"), timeout=5))
            bdseq = spd.by_name(birth)["bdSeq"].long_value
            await rec.wait_for(topic(base_topic, "DBIRTH", "th"), timeout=5)
            # Offline: NDEATH with the current bdSeq, a disconnect and a reconnect
            # (tck-id-message-flow-edge-node-birth-publish-phid-offline); then nothing, not
            # even for an NCMD Rebirth or a stale "online", until the host is back.
            mark = rec.mark()
            await publish(
                mqtt_broker, state, json.dumps({"online": False, "timestamp": ts + 1}), retain=True
            )
            death = decoded(await rec.wait_for_after(mark, topic(base_topic, "NDEATH"), timeout=5))
            assert spd.by_name(death)["bdSeq"].long_value == bdseq
            await asyncio.sleep(1.5)  # the reconnect (backoff 0.5 s) and the retained STATE
            await publish(mqtt_broker, topic(base_topic, "NCMD"), rebirth)
            await publish(mqtt_broker, state, json.dumps({"online": True, "timestamp": ts}))
            await rec.assert_nothing(topic(base_topic, "NBIRTH"), duration=1.0)
            await publish(
                mqtt_broker, state, json.dumps({"online": True, "timestamp": ts + 2}), retain=True
            )
            again = decoded(await rec.wait_for_after(mark, topic(base_topic, "NBIRTH"), timeout=5))
            assert again.seq == 0
            assert spd.by_name(again)["bdSeq"].long_value == (bdseq + 1) % 256
            await rec.wait_for_after(mark, topic(base_topic, "DBIRTH", "th"), timeout=5)
            assert len(rec.since(mark, topic(base_topic, "NDEATH"))) == 1
    finally:
        await publish(mqtt_broker, state, b"", retain=True)


async def test_killed_bridge_leaves_its_ndeath_will(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    config = tmp_path / "spb.toml"
    config.write_text(
        f'[bridge]\nbase_topic = "{base_topic}"\n'
        f'[mqtt]\nurl = "{mqtt_broker.url}"\nclient_id = "cli-{base_topic}"\nkeepalive_s = 5\n'
        "[homeassistant]\nenabled = false\n"
        f'[sparkplug]\nenabled = true\ngroup_id = "{base_topic}"\nedge_node_id = "{EDGE}"\n'
        '[[devices]]\nid = "th"\nport = "sim://thermostat"\n'
    )
    proc = await spawn_cli(config)
    try:
        async with Recorder(mqtt_broker, f"spBv1.0/{base_topic}/#") as rec:
            birth = decoded(await rec.wait_for(topic(base_topic, "NBIRTH"), timeout=20))
            await rec.wait_for(topic(base_topic, "DBIRTH", "th"), timeout=10)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            will = await rec.wait_for(topic(base_topic, "NDEATH"), timeout=15)
            assert will.qos == 1 and will.retain is False
            bdseq = spd.by_name(birth)["bdSeq"].long_value
            assert spd.by_name(decoded(will))["bdSeq"].long_value == bdseq
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
