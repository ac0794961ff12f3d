"""The request API over MQTT against a real broker, with `sim://` boards
(`docs/requests.md`): boards added, changed, renamed and removed at run time, every
refusal, the config file written atomically with its comments kept, reload and SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from support.broker import Broker
from support.harness import running_bridge, spawn_cli, wait_until
from support.mqtt_client import publish, publish_properties, retained_snapshot
from support.recorder import Recorder

from conduyt_bridge.app.config import load_settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.requests import service, store
from conduyt_bridge.app.requests.mqtt import MAX_REQUEST_BYTES

BRIDGE_ID = "b1"

DEVICE_KEYS = """keepalive_s = 0.5
keepalive_misses = 2
reconnect_min_s = 0.1
reconnect_max_s = 0.5
hello_timeout_ms = 300
"""


def config_text(broker: Broker, base: str, *, ha: bool, devices: list[str]) -> str:
    """A commented config file with one `[[devices]]` entry per id (`sim://thermostat`)."""
    entries = "".join(
        f'\n# board {dev}: a simulated thermostat\n[[devices]]\nid = "{dev}"   # its id\n'
        f'port = "sim://thermostat"\n{DEVICE_KEYS}'
        for dev in devices
    )
    return (
        "# conduyt-bridge test configuration\n"
        f'[bridge]\nid = "{BRIDGE_ID}"\nbase_topic = "{base}"  # per test\n'
        'log_level = "debug"\n\n'
        f'[mqtt]\nurl = "{broker.url}"\nclient_id = "bridge-{base}"\nreconnect_max_s = 0.5\n\n'
        f'[homeassistant]\nenabled = {"true" if ha else "false"}\n'
        f'discovery_prefix = "{base}-ha"\n'
        f"{entries}"
        "\n# the end: nothing below\n"
    )


def bridge_from(path: Path) -> contextlib.AbstractAsyncContextManager[Bridge]:
    """A Bridge from the config file at `path` (with `config_path`), run in-process."""
    return running_bridge(load_settings(path), config_path=path)


class Requester:
    """Publishes requests and waits for their responses (matched by `transaction`)."""

    def __init__(self, broker: Broker, base: str, rec: Recorder) -> None:
        self.broker = broker
        self.prefix = f"{base}/bridge/{BRIDGE_ID}"
        self.rec = rec

    async def raw(self, action: str, payload: bytes, **kw: Any) -> dict[str, Any]:
        mark = self.rec.mark()
        await publish(self.broker, f"{self.prefix}/request/{action}", payload, **kw)
        got = await self.rec.wait_for_after(mark, f"{self.prefix}/response/{action}", timeout=15)
        assert got.retain is False
        assert got.qos == 1
        doc: dict[str, Any] = got.json()
        return doc

    async def __call__(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        transaction = uuid.uuid4().hex
        mark = self.rec.mark()
        body = json.dumps({**payload, "transaction": transaction})
        await publish(self.broker, f"{self.prefix}/request/{action}", body)
        got = await self.rec.wait_for_after(
            mark,
            f"{self.prefix}/response/{action}",
            lambda p: json.loads(p).get("transaction") == transaction,
            timeout=15,
        )
        doc: dict[str, Any] = got.json()
        del doc["transaction"]
        return doc


def discovery(snapshot: dict[str, bytes], node: str, prefix: str) -> dict[str, Any]:
    payload = snapshot[f"{prefix}/device/{node}/config"]
    doc: dict[str, Any] = json.loads(payload)
    return doc


async def test_board_added_changed_renamed_and_removed(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(broker, base_topic, ha=True, devices=["keep"]))
    ha = f"{base_topic}-ha"
    node = f"bridge-{base_topic}_lab"
    async with (
        Recorder(broker, f"{base_topic}/#", f"{ha}/#") as rec,
        bridge_from(path) as bridge,
    ):
        ask = Requester(broker, base_topic, rec)
        await rec.wait_for(f"{base_topic}/keep/status", payload="online")
        keep_mark = rec.mark()
        keep_session = bridge.sessions["keep"]

        # device/add: the board starts at once, its topics and discovery appear.
        added = await ask("device/add", {"id": "lab", "port": "sim://thermostat"})
        assert added["status"] == "ok", added
        assert added["data"]["id"] == "lab"
        assert added["data"]["config"] == {"id": "lab", "port": "sim://thermostat"}
        await rec.wait_for(f"{base_topic}/lab/status", payload="online", timeout=10)
        await rec.wait_for(f"{base_topic}/lab/ds/temperature_celsius", timeout=10)
        config = json.loads((await rec.wait_for(f"{ha}/device/{node}/config", timeout=10)).payload)
        unique_ids = sorted(c["unique_id"] for c in config["cmps"].values())
        assert f"{node}_ds_setpoint_celsius" in unique_ids
        setpoint = config["cmps"]["ds_setpoint_celsius"]
        assert setpoint["state_topic"] == f"{base_topic}/lab/ds/setpoint_celsius"
        inventory = await rec.wait_for(
            f"{base_topic}/bridge/{BRIDGE_ID}/devices",
            lambda p: [e["id"] for e in json.loads(p)] == ["keep", "lab"],
        )
        assert inventory.retain is True
        assert 'id = "lab"' in path.read_text()
        assert "lab" in bridge.boards and "lab" in bridge.sessions

        # device/options: only this board restarts, the file says read_only.
        mark = rec.mark()
        changed = await ask("device/options", {"id": "lab", "options": {"read_only": True}})
        assert changed["status"] == "ok", changed
        assert changed["data"]["restarted"] is True
        assert changed["data"]["config"]["read_only"] is True
        await rec.wait_for_after(mark, f"{base_topic}/lab/status", payload="online", timeout=10)
        entry = tomlkit.parse(path.read_text())["devices"][1]
        assert entry["read_only"] is True

        # device/rename: old retained topics cleared, discovery keeps node and unique ids.
        mark = rec.mark()
        renamed = await ask("device/rename", {"from": "lab", "to": "lab2"})
        assert renamed["status"] == "ok", renamed
        assert renamed["data"]["id"] == "lab2" and renamed["data"]["from"] == "lab"
        await rec.wait_for_after(mark, f"{base_topic}/lab2/status", payload="online", timeout=10)
        new_config = await rec.wait_for_after(
            mark,
            f"{ha}/device/{node}/config",
            lambda p: b"lab2/ds" in p,
            timeout=10,
        )
        moved = json.loads(new_config.payload)
        assert sorted(c["unique_id"] for c in moved["cmps"].values()) == unique_ids
        setpoint = moved["cmps"]["ds_setpoint_celsius"]
        assert setpoint["state_topic"] == f"{base_topic}/lab2/ds/setpoint_celsius"
        assert moved["dev"]["name"] == "lab2"
        assert await retained_snapshot(broker, f"{base_topic}/lab/#", settle=0.3) == {}
        retained = await retained_snapshot(broker, f"{base_topic}/lab2/#", settle=0.3)
        assert retained[f"{base_topic}/lab2/status"] == b"online"
        assert f"{base_topic}/lab2/meta" in retained
        entry = tomlkit.parse(path.read_text())["devices"][1]
        assert (entry["id"], entry["discovery_id"]) == ("lab2", "lab")
        await rec.wait_for_after(
            mark,
            f"{base_topic}/bridge/{BRIDGE_ID}/devices",
            lambda p: [e["id"] for e in json.loads(p)] == ["keep", "lab2"],
        )

        # device/remove: retained topics and discovery cleared, file entry gone.
        mark = rec.mark()
        removed = await ask("device/remove", {"id": "lab2"})
        assert removed == {"status": "ok", "data": {"id": "lab2"}}
        devices_topic = f"{base_topic}/bridge/{BRIDGE_ID}/devices"
        await rec.wait_for_after(
            mark, devices_topic, lambda p: [e["id"] for e in json.loads(p)] == ["keep"]
        )
        inventory = (await retained_snapshot(broker, devices_topic, settle=0.3))[devices_topic]
        assert [e["id"] for e in json.loads(inventory)] == ["keep"]
        assert await retained_snapshot(broker, f"{base_topic}/lab2/#", settle=0.3) == {}
        leftovers = await retained_snapshot(broker, f"{ha}/#", settle=0.3)
        assert not [t for t in leftovers if node in t]
        assert "lab" not in path.read_text().replace("# board keep", "")
        assert list(bridge.boards) == ["keep"]

        # The other board never went offline, nor was its session replaced.
        statuses = [m.payload for m in rec.since(keep_mark, f"{base_topic}/keep/status")]
        assert b"offline" not in statuses
        assert bridge.sessions["keep"] is keep_session and keep_session.online


async def test_every_refusal_changes_nothing(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(broker, base_topic, ha=False, devices=["keep"]))
    before = path.read_bytes()
    prefix = f"{base_topic}/bridge/{BRIDGE_ID}"
    async with (
        Recorder(broker, f"{prefix}/response/#", f"{base_topic}/reply/#") as rec,
        bridge_from(path) as bridge,
    ):
        ask = Requester(broker, base_topic, rec)
        await wait_until(lambda: bridge.boards["keep"].online, 10)

        async def refused(action: str, payload: dict[str, Any], error: str) -> None:
            doc = await ask(action, payload)
            assert doc == {"status": "error", "data": None, "error": error}
            assert path.read_bytes() == before
            assert list(bridge.boards) == ["keep"]

        await refused(
            "device/fly",
            {},
            "unknown action 'device/fly': one of device/add, device/remove, device/rename, "
            "device/options, scan, config/reload",
        )
        await refused(
            "device/add",
            {"id": "keep", "port": "sim://uno"},
            "a board with id 'keep' exists already: choose another id",
        )
        await refused("device/add", {"id": "x"}, "'port' must be a non-empty string")
        await refused(
            "device/add",
            {"id": "x", "port": "ftp://host"},
            "invalid device: port: unknown port scheme 'ftp://': use one of 'listen://', "
            "'rfc2217://', 'sim://', 'socket://', 'tcp://' or a serial device path (e.g. "
            "'/dev/ttyUSB0'); did you mean 'tcp://'?",
        )
        allowed = "'/dev/serial/by-id/*', '/dev/ttyUSB*', '/dev/ttyACM*', 'sim://*'"
        await refused(
            "device/add",
            {"id": "x", "port": "/etc/passwd"},
            f"port '/etc/passwd' is not allowed: [bridge] allowed_ports permits {allowed}",
        )
        await refused(
            "device/add",
            {"id": "x", "port": "/dev/ttyUSB0/../sda"},
            f"port '/dev/ttyUSB0/../sda' is not allowed: [bridge] allowed_ports permits "
            f"{allowed}",
        )
        await refused(
            "device/add",
            {"id": "x", "port": "tcp://10.0.0.5:5000"},
            f"port 'tcp://10.0.0.5:5000' is not allowed: [bridge] allowed_ports permits "
            f"{allowed}",
        )
        await refused(
            "device/add",
            {"id": "x", "port": "sim://thermostat", "options": {"read_only": "maybe"}},
            "invalid device: read_only: Input should be a valid boolean, unable to interpret "
            "input",
        )
        await refused(
            "device/options",
            {"id": "keep", "options": {"id": "other"}},
            "id cannot be changed here: use device/rename",
        )
        await refused("device/remove", {"id": "ghost"}, "no board with id 'ghost' (boards: 'keep')")
        await refused(
            "device/rename",
            {"from": "keep", "to": "bridge"},
            "the change would make the configuration invalid: devices[0].id: device id "
            "'bridge' is reserved for {base}/bridge/ topics: choose another id",
        )
        # scan's own checks (docs/requests.md §3.5): nothing is probed.
        await refused("scan", {"timeout_s": True}, "'timeout_s' must be a number of seconds")
        await refused(
            "scan", {"timeout_s": 11}, "'timeout_s' must be above 0 and at most 10 s"
        )
        await refused(
            "scan", {"ports": "/dev/ttyUSB0"}, "'ports' must be a list of port strings"
        )
        await refused(
            "scan", {"ports": ["/dev/ttyUSB0"] * 65}, "'ports' lists 65 ports: at most 64"
        )
        await refused(
            "scan",
            {"ports": ["sim://thermostat"]},
            "port 'sim://thermostat' cannot be scanned: only serial ports can",
        )

        # Payloads that are no JSON object: refused before any action sees them.
        huge = b'{"id": "' + b"x" * MAX_REQUEST_BYTES + b'"}'
        for payload, error in [
            (b"{not json", "request payload is not JSON: Expecting property name enclosed in "
             "double quotes: line 1 column 2 (char 1)"),
            (b"\xff\xfe", "request payload is not UTF-8 text"),
            (huge, f"request payload of {len(huge)} bytes is longer than {MAX_REQUEST_BYTES}"),
            (b"[" * 40 + b"]" * 40,
             "request payload nests JSON arrays/objects more than 32 levels deep"),
            (b"[1, 2]", "request payload must be a JSON object, not list"),
        ]:
            doc = await ask.raw("device/add", payload)
            assert doc == {"status": "error", "data": None, "error": error}
        doc = await ask.raw("device/remove", b'{"id": "keep"}', retain=True)
        assert doc["error"] == (
            "request was retained: requests must not be retained (clear it with an empty "
            "retained message)"
        )
        await publish(broker, f"{prefix}/request/device/remove", b"", retain=True)
        assert list(bridge.boards) == ["keep"] and path.read_bytes() == before

        # The transaction is echoed with an error too; MQTT 5 Response Topic + Correlation.
        props = publish_properties(response_topic=f"{base_topic}/reply/1", correlation_data=b"c1")
        body = json.dumps({"id": "ghost", "transaction": {"n": 1}})
        await publish(broker, f"{prefix}/request/device/remove", body, properties=props)
        reply = await rec.wait_for(f"{base_topic}/reply/1")
        assert reply.correlation_data == b"c1"
        assert reply.json() == {
            "status": "error",
            "data": None,
            "error": "no board with id 'ghost' (boards: 'keep')",
            "transaction": {"n": 1},
        }

        # A write that fails (the rename over the file): the change is undone.
        def broken(src: Path, dst: Path) -> None:
            raise PermissionError(13, "Permission denied")

        original = store.replace_file
        store.replace_file = broken
        try:
            await refused(
                "device/add",
                {"id": "late", "port": "sim://thermostat"},
                f"cannot write the config file {path}: Permission denied; the change was "
                "undone",
            )
        finally:
            store.replace_file = original
        assert sorted(os.listdir(tmp_path)) == ["config.toml"]

        # allow_remote_config = false, applied by config/reload: only scan is answered.
        text = path.read_text().replace('log_level = "debug"', 'log_level = "debug"\n'
                                        "allow_remote_config = false")
        path.write_text(text)
        reloaded = await ask("config/reload", {})
        assert reloaded == {
            "status": "ok",
            "data": {
                "added": [],
                "removed": [],
                "restarted": [],
                "unchanged": ["keep"],
                "restart_required": [],
            },
        }
        before = path.read_bytes()
        await refused(
            "device/add",
            {"id": "x", "port": "sim://thermostat"},
            "device/add refused: remote configuration is off ([bridge] allow_remote_config "
            "= false); only scan is answered",
        )
        scan = await ask("scan", {"ports": [str(tmp_path / "no-such-tty")]})
        assert scan["status"] == "error"
        assert scan["error"].startswith(f"port '{tmp_path / 'no-such-tty'}' is not allowed")
        scan = await ask("scan", {"ports": ["/dev/ttyUSB99"], "timeout_s": 0.2})
        assert scan["status"] == "ok"
        [result] = scan["data"]["results"]
        assert (result["port"], result["ok"]) == ("/dev/ttyUSB99", False)


async def test_without_a_config_file_changes_are_refused(
    broker: Broker, base_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.harness import make_settings

    settings = make_settings(broker, base_topic, [], bridge={"id": BRIDGE_ID})
    async with running_bridge(settings) as bridge:
        response = await bridge.requests.handle(
            "device/add", {"id": "x", "port": "sim://thermostat", "transaction": 5}
        )
        assert response.to_json() == {
            "status": "error",
            "data": None,
            "error": "this bridge was started without a config file (configured from the "
            "environment only): changes cannot be saved; start it with --config FILE",
            "transaction": 5,
        }
        assert bridge.boards == {}
    # Once stopped (or before it runs) a bridge refuses every request.
    response = await bridge.requests.handle("config/reload", {})
    assert response.to_json() == {
        "status": "error",
        "data": None,
        "error": "config/reload refused: the bridge is shutting down",
    }
    never_run = Bridge(settings)
    never_run.stop()
    response = await never_run.requests.handle("scan", {})
    assert response.error == "scan refused: the bridge is shutting down"
    # Not started yet: a request waits (bounded) for the boards to start, then is refused.
    monkeypatch.setattr(service, "START_WAIT_S", 0.01)
    response = await Bridge(settings).requests.handle("device/remove", {"id": "x"})
    assert response.error == "device/remove refused: the bridge is not running"


async def test_sighup_restarts_only_the_changed_board(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config_text(broker, base_topic, ha=False, devices=["a", "b"]))
    async with Recorder(broker, f"{base_topic}/+/status") as rec:
        proc = await spawn_cli(path)
        try:
            await rec.wait_for(f"{base_topic}/a/status", payload="online", timeout=15)
            await rec.wait_for(f"{base_topic}/b/status", payload="online", timeout=15)
            mark = rec.mark()
            text = path.read_text()
            # b changes; c is new; a stays as it is.
            text = text.replace('id = "b"   # its id\n', 'id = "b"   # its id\nread_only = true\n')
            text += f'\n[[devices]]\nid = "c"\nport = "sim://thermostat"\n{DEVICE_KEYS}'
            path.write_text(text)
            proc.send_signal(signal.SIGHUP)
            await rec.wait_for_after(mark, f"{base_topic}/c/status", payload="online", timeout=15)
            await rec.wait_for_after(mark, f"{base_topic}/b/status", payload="offline")
            await rec.wait_for_after(mark, f"{base_topic}/b/status", payload="online", timeout=15)
            assert rec.since(mark, f"{base_topic}/a/status") == []
            assert proc.returncode is None
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
    assert proc.returncode == 0


async def test_mqtt_311_answers_on_the_response_topic(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    text = config_text(broker, base_topic, ha=False, devices=["keep"])
    mqtt_311 = 'reconnect_max_s = 0.5\nprotocol = "3.1.1"\n\n'
    path.write_text(text.replace("reconnect_max_s = 0.5\n\n", mqtt_311, 1))
    async with (
        Recorder(broker, f"{base_topic}/bridge/{BRIDGE_ID}/response/#") as rec,
        bridge_from(path) as bridge,
    ):
        assert bridge.settings.mqtt.protocol == "3.1.1"
        ask = Requester(broker, base_topic, rec)
        # Subscribed by then (the subscription follows the connect, requests before it are lost).
        await wait_until(lambda: bridge.boards["keep"].online, 10)
        assert await ask("device/remove", {"id": "ghost"}) == {
            "status": "error",
            "data": None,
            "error": "no board with id 'ghost' (boards: 'keep')",
        }
        added = await ask("device/add", {"id": "lab", "port": "sim://thermostat"})
        assert added["status"] == "ok", added
        assert list(bridge.boards) == ["keep", "lab"]
