"""Config edits made through the request API survive a restart with the file's comments
intact (`docs/requests.md`, issue 12's "Done when"): the real `conduyt-bridge` CLI, a real
Mosquitto, `sim://` boards. A board is added, given options and renamed over MQTT; the
process is stopped; a new process started from the same file brings the board back under
its new id, with its options and its Home Assistant node id, and every comment and line of
the user's file is still there."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import tomlkit
from support.broker import Broker
from support.harness import spawn_cli
from support.mqtt_client import retained_snapshot
from support.recorder import Recorder
from test_requests_e2e import BRIDGE_ID, Requester, config_text


@contextlib.asynccontextmanager
async def cli_bridge(path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """`conduyt-bridge --config path` in its own process, stopped with SIGTERM (exit 0)."""
    proc = await spawn_cli(path)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    assert proc.returncode == 0


async def test_added_board_and_comments_survive_a_restart(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    original = config_text(broker, base_topic, ha=True, devices=["keep"])
    path.write_text(original)
    ha = f"{base_topic}-ha"
    node = f"bridge-{base_topic}_lab"
    devices_topic = f"{base_topic}/bridge/{BRIDGE_ID}/devices"

    async with Recorder(broker, f"{base_topic}/#", f"{ha}/#") as rec:
        async with cli_bridge(path):
            ask = Requester(broker, base_topic, rec)
            await rec.wait_for(f"{base_topic}/keep/status", payload="online", timeout=15)
            added = await ask("device/add", {"id": "lab", "port": "sim://thermostat"})
            assert added["status"] == "ok", added
            await rec.wait_for(f"{base_topic}/lab/status", payload="online", timeout=10)
            options = {"read_only": True, "datastreams": {"setpoint": {"name": "Target"}}}
            changed = await ask("device/options", {"id": "lab", "options": options})
            assert changed["status"] == "ok", changed
            renamed = await ask("device/rename", {"from": "lab", "to": "lab2"})
            assert renamed["status"] == "ok", renamed
            await rec.wait_for(f"{base_topic}/lab2/status", payload="online", timeout=10)
        after_first_run = path.read_text()

        # Every line of the user's file (comments, inline comments, the trailing comment
        # after the last entry) is still there, in order; only the new entry was added.
        lines = after_first_run.splitlines()
        kept = iter(lines)
        missing = [line for line in original.splitlines() if line not in kept]
        assert missing == []
        doc = tomlkit.parse(after_first_run)
        entries = doc["devices"]
        assert [e["id"] for e in entries] == ["keep", "lab2"]
        lab2 = entries[1]
        assert (lab2["port"], lab2["read_only"], lab2["discovery_id"]) == (
            "sim://thermostat",
            True,
            "lab",
        )
        assert lab2["datastreams"]["setpoint"]["name"] == "Target"

        # A new process from the same file: both boards come back, lab2 with its options
        # and the node id HA knows it by; the file is not rewritten by a plain start.
        mark = rec.mark()
        async with cli_bridge(path):
            await rec.wait_for_after(
                mark, f"{base_topic}/lab2/status", payload="online", timeout=15
            )
            await rec.wait_for_after(
                mark, f"{base_topic}/keep/status", payload="online", timeout=15
            )
            await rec.wait_for_after(
                mark,
                devices_topic,
                lambda p: [e["id"] for e in json.loads(p)] == ["keep", "lab2"],
                timeout=10,
            )
            # (the first process's last messages may reach the recorder after `mark`:
            # wait for the new process's config, the one with lab2's topics and name)
            topic = f"{ha}/device/{node}/config"
            config = await rec.wait_for_after(
                mark, topic, lambda p: b"lab2/ds" in p and b'"Target"' in p, timeout=10
            )
            retained = await retained_snapshot(broker, topic, settle=0.3)
            assert retained == {topic: config.payload}
            cmps = json.loads(config.payload)["cmps"]
            setpoint = cmps["ds_setpoint_celsius"]
            assert setpoint["name"] == "Target"
            # read_only: the setpoint is a plain sensor, HA gets no command topic for it
            assert "command_topic" not in setpoint
            assert setpoint["state_topic"] == f"{base_topic}/lab2/ds/setpoint_celsius"
            assert await retained_snapshot(broker, f"{base_topic}/lab/#", settle=0.3) == {}
        assert path.read_text() == after_first_run
