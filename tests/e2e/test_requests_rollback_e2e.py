"""A change the bridge cannot save is undone (`docs/requests.md` §4), changes run one at a
time (§1), a shutting-down bridge refuses them (§2) and a `device/add` the config model
refuses gets the model's own message (§3.1): against a real broker, with `sim://`
boards and Home Assistant discovery on. The config file's rename is made to fail through
`store.replace_file`; everything a client can see must then be as it was: the file's
bytes, the running boards, the retained topics and the discovery configs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from support.broker import Broker
from support.harness import running_bridge, wait_until
from support.mqtt_client import retained_snapshot
from support.recorder import Recorder

from conduyt_bridge.app.config import ConfigError, load_settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.requests import store

DEVICE_KEYS = (
    "keepalive_s = 0.5\nkeepalive_misses = 2\nreconnect_min_s = 0.1\n"
    "reconnect_max_s = 0.5\nhello_timeout_ms = 300\n"
)


def write_config(path: Path, broker: Broker, base: str, devices: list[str]) -> None:
    entries = "".join(
        f'\n# {dev}\n[[devices]]\nid = "{dev}"\nport = "sim://thermostat"\n{DEVICE_KEYS}'
        for dev in devices
    )
    path.write_text(
        f'# test\n[bridge]\nid = "b1"\nbase_topic = "{base}"\n\n'
        f'[mqtt]\nurl = "{broker.url}"\nclient_id = "bridge-{base}"\nreconnect_max_s = 0.5\n\n'
        f'[homeassistant]\nenabled = true\ndiscovery_prefix = "{base}-ha"\n{entries}'
    )


def bridge_from(path: Path) -> contextlib.AbstractAsyncContextManager[Bridge]:
    """A Bridge from the config file at `path` (with `config_path`), run in-process."""
    return running_bridge(load_settings(path), config_path=path)


@contextlib.contextmanager
def failing_rename() -> Iterator[None]:
    """The rename of the staged file over the config file fails (a full or read-only
    file system would fail it the same way)."""

    def broken(src: Path, dst: Path) -> None:
        raise OSError(30, "Read-only file system")

    original = store.replace_file
    store.replace_file = broken
    try:
        yield
    finally:
        store.replace_file = original


def visible(snapshot: dict[str, bytes]) -> dict[str, Any]:
    """What must be unchanged after an undone change: every retained topic, with its
    payload except for the datastream states (a simulated thermostat's temperature
    moves), and the discovery configs as JSON."""
    out: dict[str, Any] = {}
    for topic, payload in snapshot.items():
        if "/ds/" in topic:
            out[topic] = "a value"
        elif topic.endswith("/config"):
            out[topic] = json.loads(payload)
        elif topic.endswith("/health"):
            continue
        else:
            out[topic] = payload
    return out


async def broker_view(broker: Broker, base: str) -> dict[str, Any]:
    snapshot = await retained_snapshot(broker, f"{base}/#", settle=0.3)
    snapshot |= await retained_snapshot(broker, f"{base}-ha/#", settle=0.3)
    return visible(snapshot)


async def until_view(broker: Broker, base: str, expected: dict[str, Any]) -> None:
    """Wait (bounded) until the broker's retained view is `expected`, then assert it."""
    seen: dict[str, Any] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(15):
            while (seen := await broker_view(broker, base)) != expected:
                pass
    assert seen == expected


async def test_a_failed_write_undoes_add_remove_and_rename(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    write_config(path, broker, base_topic, ["keep", "lab"])
    before = path.read_bytes()
    ha_config = f"{base_topic}-ha/device/bridge-{base_topic}_lab/config"
    async with Recorder(broker, f"{base_topic}/#", f"{base_topic}-ha/#") as rec:
        async with bridge_from(path) as bridge:
            await rec.wait_for(ha_config, lambda p: bool(p), timeout=10)
            await rec.wait_for(f"{base_topic}/keep/status", payload="online", timeout=10)
            expected = await broker_view(broker, base_topic)
            assert expected[f"{base_topic}/lab/status"] == b"online"
            assert f"{base_topic}/lab/owner" in expected and ha_config in expected
            keep = bridge.sessions["keep"]

            async def refused(action: str, payload: dict[str, Any]) -> None:
                with failing_rename():
                    response = (await bridge.requests.handle(action, payload)).to_json()
                assert response == {
                    "status": "error",
                    "data": None,
                    "error": f"cannot write the config file {path}: Read-only file system; "
                    "the change was undone",
                }
                assert path.read_bytes() == before
                assert sorted(os.listdir(tmp_path)) == ["config.toml"]
                assert list(bridge.boards) == ["keep", "lab"]
                assert [d.device_id for d in bridge.settings.devices] == ["keep", "lab"]
                await wait_until(lambda: bridge.boards["lab"].online, 10)
                await until_view(broker, base_topic, expected)

            await refused("device/add", {"id": "new", "port": "sim://thermostat"})
            await refused("device/remove", {"id": "lab"})
            await refused("device/rename", {"from": "lab", "to": "lab2"})
            await refused("device/options", {"id": "lab", "options": {"read_only": True}})
            assert bridge.boards["lab"].config.read_only is False
            # The other board was never touched.
            assert bridge.sessions["keep"] is keep and keep.online
        inventory = rec.messages(f"{base_topic}/bridge/b1/devices")[-1]
        assert [e["id"] for e in json.loads(inventory.payload)] == ["keep", "lab"]


async def test_changes_run_one_at_a_time(broker: Broker, base_topic: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_config(path, broker, base_topic, ["keep"])
    async with bridge_from(path) as bridge:
        handle = bridge.requests.handle
        add = {"id": "lab", "port": "sim://thermostat"}

        # Two adds of one id at once: the first wins, the second sees its board.
        first, second = await asyncio.gather(handle("device/add", add), handle("device/add", add))
        assert first.status == "ok", first
        assert second.to_json() == {
            "status": "error",
            "data": None,
            "error": "a board with id 'lab' exists already: choose another id",
        }
        assert path.read_text().count('id = "lab"') == 1
        assert list(bridge.boards) == ["keep", "lab"]

        # Remove and add again at once, in arrival order: both apply, file and bridge agree.
        results = await asyncio.gather(
            handle("device/remove", {"id": "lab"}),
            handle("device/add", {**add, "options": {"read_only": True}}),
            handle("device/rename", {"from": "lab", "to": "lab2"}),
        )
        assert [r.status for r in results] == ["ok", "ok", "ok"], results
        file_ids = [d.device_id for d in load_settings(path).devices]
        assert file_ids == list(bridge.boards) == ["keep", "lab2"]
        assert load_settings(path).devices[1].read_only is True
        assert bridge.boards["lab2"].config.read_only is True


async def test_a_stopping_bridge_refuses_changes(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    write_config(path, broker, base_topic, ["keep"])
    before = path.read_bytes()
    async with bridge_from(path) as bridge:
        await wait_until(lambda: bridge.boards["keep"].online, 10)
        bridge.stop()
        response = await bridge.requests.handle(
            "device/add", {"id": "lab", "port": "sim://thermostat", "transaction": 1}
        )
        assert response.to_json() == {
            "status": "error",
            "data": None,
            "error": "device/add refused: the bridge is shutting down",
            "transaction": 1,
        }
    assert path.read_bytes() == before
    assert list(bridge.boards) == ["keep"]


OPTIONS_THE_MODEL_REFUSES: list[dict[str, Any]] = [
    {"pins": [{"pin": 4, "mode": "fly"}]},
    {"pins": "all"},
    {"baudrate": -1},
    {"read_only": "maybe"},
    {"datastreams": {"temperature": {"expire_after_s": "soon"}}},
    {"unknown_key": 1},
]


async def test_device_add_refuses_what_the_config_file_would_with_its_message(
    broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    write_config(path, broker, base_topic, ["keep"])
    before = path.read_bytes()
    probe = tmp_path / "probe" / "config.toml"
    probe.parent.mkdir()
    async with bridge_from(path) as bridge:
        for options in OPTIONS_THE_MODEL_REFUSES:
            # The message a config file with this entry gets at start…
            probe.write_text(tomlkit.dumps({"devices": [{"port": "sim://uno", **options}]}))
            with pytest.raises(ConfigError) as at_start:
                load_settings(probe)
            errors = at_start.value.errors
            reasons = "; ".join(f"{k.removeprefix('devices[0].')}: {r}" for k, r in errors)
            # …is the request's, word for word.
            response = await bridge.requests.handle(
                "device/add", {"id": "x", "port": "sim://uno", "options": options}
            )
            assert response.error == f"invalid device: {reasons}", options
        for payload, error in [
            (
                {"id": "x" * 7000, "port": "sim://uno"},
                "invalid device: id: must be 1-64 letters, digits, '_' or '-', starting with a "
                f"letter or digit (got '{'x' * 7000}')",
            ),
            (
                {"id": "x", "port": "sim://../../etc/passwd"},
                "invalid device: port: unknown simulator profile '../../etc/passwd'; profiles: "
                "firehose, garage, kitchen, thermostat, uno, workshop",
            ),
            (
                {"id": "x", "port": "sim://%75no"},
                "invalid device: port: unknown simulator profile '%75no'; profiles: firehose, "
                "garage, kitchen, thermostat, uno, workshop",
            ),
            (
                {"id": "x", "port": "socket://10.0.0.5:1@evil.example:80"},
                "port 'socket://10.0.0.5:1@evil.example:80' is not allowed: [bridge] "
                "allowed_ports permits '/dev/serial/by-id/*', '/dev/ttyUSB*', '/dev/ttyACM*', "
                "'sim://*'",
            ),
            (
                {"id": "x", "port": "sim://uno", "options": []},
                "'options' must be a JSON object of [[devices]] keys",
            ),
            ({"id": 5, "port": "sim://uno"}, "'id' must be a non-empty string"),
        ]:
            response = await bridge.requests.handle("device/add", payload)
            assert response.error == error
        response = await bridge.requests.handle("device/add", ["not", "an", "object"])  # type: ignore[arg-type]
        assert response.error == "request payload must be a JSON object, not list"
        assert path.read_bytes() == before
        assert list(bridge.boards) == ["keep"]
