"""Hostile MQTT input (issue 8, item 2): whatever a client publishes under the base topic
ends in an ordinary error report, at debug level in the log, with the board still working.

Real Mosquitto, the bridge in-process, simulated boards on a pty (tests/support/rig.py).
The `kitchen` profile says `max_payload` 512 in its HELLO_RESP, so its commands are at most
6 * 512 + 1024 = 4096 bytes long (`payload_limit`, docs/hostile-input.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import structlog
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.mqtt_client import publish
from support.recorder import Recorder
from support.rig import Rig, rig

from conduyt_bridge.app.config import MqttSection
from conduyt_bridge.app.metrics import BridgeMetrics
from conduyt_bridge.northbound.conduyt.adapter import payload_limit
from conduyt_bridge.northbound.conduyt.payloads import parse_command_payload
from conduyt_bridge.northbound.json_limits import MAX_JSON_DEPTH, json_nesting_exceeds
from conduyt_bridge.northbound.mqtt import inbound
from conduyt_bridge.northbound.mqtt.connection import MqttConnection
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard

KITCHEN_LIMIT = 6 * 512 + 1024
NESTED = b"[" * 4000  # deep, but under the kitchen's length limit: the nesting is refused
TOO_DEEP = {
    "error": "payload",
    "code": None,
    "name": "NESTED_TOO_DEEP",
    "message": "payload nests JSON arrays/objects more than 32 levels deep",
}


@pytest.fixture
def log_records() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event (level included) and every stdlib record at warning or above
    while the test runs, as dicts with `log_level` and `event`."""
    stdlib: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stdlib.append(record)

    handler = Keep(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        with structlog.testing.capture_logs() as events:
            yield events
            events.extend(
                {"log_level": r.levelname.lower(), "event": r.getMessage(), "logger": r.name}
                for r in stdlib
            )
    finally:
        logging.getLogger().removeHandler(handler)


KitchenRig = Callable[[], contextlib.AbstractAsyncContextManager[Rig]]


@pytest.fixture
def kitchen(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> KitchenRig:
    """Opens the command rig on a `kitchen` board; the test enters it, so the test sees its
    shutdown before it checks the log."""
    return lambda: rig(mqtt_broker, base_topic, tmp_path, "kitchen")


def errors_in(records: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [r for r in records if r["log_level"] in ("error", "critical", "exception")]


# ---- the parse point -----------------------------------------------------------------------


def test_nesting_check_ignores_brackets_in_strings() -> None:
    assert json_nesting_exceeds("[" * 100_000, MAX_JSON_DEPTH)
    assert json_nesting_exceeds("[" * 33, MAX_JSON_DEPTH)
    assert not json_nesting_exceeds("[" * 32 + "]" * 32, MAX_JSON_DEPTH)
    assert not json_nesting_exceeds('"' + "[" * 100 + '"', MAX_JSON_DEPTH)
    assert not json_nesting_exceeds('["\\"' + "[" * 40 + '"]', MAX_JSON_DEPTH)
    assert parse_command_payload(b'{"value": "' + b"{" * 50 + b'"}').value == {"value": "{" * 50}


def test_recursion_never_escapes_the_parser() -> None:
    with pytest.raises(Exception) as caught:
        parse_command_payload(b"[" * 100_000)
    assert type(caught.value).__name__ == "ConduytPayloadError"
    assert str(caught.value) == TOO_DEEP["message"]


# ---- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "report"),
    [
        ("ds/light_percent/set", TOO_DEEP),
        (
            "ds/door_open/set",  # read-only: refused before the payload is looked at
            {
                "error": "capability",
                "code": None,
                "name": "DATASTREAM_READONLY",
                "message": "datastream 'door_open' is read-only",
            },
        ),
        ("pin/2/set", TOO_DEEP),
        ("pin/2/mode/set", TOO_DEEP),
        ("pin/2/subscribe/set", TOO_DEEP),
        ("module/servo/write", TOO_DEEP),
        (
            "cmd",
            {
                "error": "payload",
                "code": None,
                "name": "BAD_MAGIC",
                "message": "not a valid Conduyt packet: bad magic: 5b 5b (expected 43 44)",
            },
        ),
    ],
)
async def test_nested_json_is_a_payload_error(
    mqtt_broker: Broker,
    base_topic: str,
    tmp_path: Path,
    log_records: list[MutableMapping[str, Any]],
    suffix: str,
    report: dict[str, Any],
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "kitchen") as r:
        for _ in range(3):  # once would not show a worker that dies after its report
            got = await r.refused(suffix, NESTED)
            assert got == {"topic": f"{r.p}/{suffix}", **report}
        ok = await r.request("ds/light_percent/set", "42")
        assert ok == {"ok": True, "value": 42}
        errors = r.rec.messages(f"{r.p}/error")
        assert [e.retain for e in errors] == [False] * 3
    assert errors_in(log_records) == []
    refusals = [e for e in log_records if e["event"] == "command refused"]
    assert len(refusals) == 3 and {e["log_level"] for e in refusals} == {"debug"}


async def test_payload_longer_than_any_command_is_refused_unread(
    kitchen: KitchenRig, log_records: list[MutableMapping[str, Any]]
) -> None:
    async with kitchen() as r:
        assert payload_limit(r.bridge.boards["kitchen"]) == KITCHEN_LIMIT
        for payload in (b"[" * 100_000, b"\xff" * (KITCHEN_LIMIT + 1)):
            got = await r.refused("ds/light_percent/set", payload)
            # Not NOT_UTF8 for the second one: it was refused before any decoding.
            assert got == {
                "topic": f"{r.p}/ds/light_percent/set",
                "error": "payload",
                "code": None,
                "name": "PAYLOAD_TOO_LONG",
                "message": f"payload of {len(payload)} bytes is longer than any command for "
                f"board 'kitchen' can be ({KITCHEN_LIMIT} bytes at most)",
            }
        # Exactly at the limit is decoded as usual (JSON allows the whitespace).
        padded = b" " * (KITCHEN_LIMIT - 2) + b"17"
        assert await r.request("ds/light_percent/set", padded) == {"ok": True, "value": 17}
        # A transaction id in an oversize payload is not echoed: nothing of it was read.
        big = b'{"value": 1, "transaction": "t-1", "pad": "' + b"x" * KITCHEN_LIMIT + b'"}'
        got = await r.refused("ds/light_percent/set", big)
        assert "transaction" not in got and got["name"] == "PAYLOAD_TOO_LONG"
    assert errors_in(log_records) == []


async def test_invalid_utf8_payload(
    kitchen: KitchenRig, log_records: list[MutableMapping[str, Any]]
) -> None:
    async with kitchen() as r:
        for suffix in ("ds/light_percent/set", "pin/2/set", "module/servo/write"):
            got = await r.refused(suffix, b"\xff\xfe[1]")
            assert got == {
                "topic": f"{r.p}/{suffix}",
                "error": "payload",
                "code": None,
                "name": "NOT_UTF8",
                "message": "payload is not UTF-8 text",
            }
        assert await r.request("ds/light_percent/set", "5") == {"ok": True, "value": 5}
    assert errors_in(log_records) == []


async def test_hostile_flood_leaves_no_error_log_and_the_board_working(
    kitchen: KitchenRig, mqtt_broker: Broker, log_records: list[MutableMapping[str, Any]]
) -> None:
    payloads = [
        b"[" * 100_000,
        b"{" * 4000,
        NESTED,
        b"\xff\xfe\xfd",
        b"\x00" * 3000,
        b'{"value": ' * 1000,
        b"x" * 200_000,
        b"",
    ]
    suffixes = ["ds/light_percent/set", "ds/door_open/set", "pin/2/set", "module/servo/write"]
    suffixes += ["pin/2/subscribe/set", "cmd", "cmd/02"]
    async with kitchen() as r:
        sent = 0
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
            for _ in range(3):
                for suffix in suffixes:
                    for payload in payloads:
                        await client.publish(f"{r.p}/{suffix}", payload, qos=1)
                        sent += 1
        await wait_until(lambda: len(r.rec.messages(f"{r.p}/error")) >= sent, timeout_s=20)
        reports = [m.json() for m in r.rec.messages(f"{r.p}/error")]
        assert len(reports) == sent
        assert {rep["name"] for rep in reports} <= {
            "PAYLOAD_TOO_LONG",
            "NESTED_TOO_DEEP",
            "NOT_UTF8",
            "EMPTY_PAYLOAD",
            "DATASTREAM_READONLY",
            "BAD_VALUE",
            "BAD_SUBSCRIPTION",
            "BAD_MAGIC",
            "TRUNCATED",
            "BUSY",
            "BAD_ARGS",
        } | {rep["name"] for rep in reports if rep["error"] in ("payload", "capability")}
        assert all(rep["name"] != "INTERNAL" for rep in reports)
        assert await r.request("ds/light_percent/set", "99") == {"ok": True, "value": 99}
    assert errors_in(log_records) == []


async def test_retained_command_is_reported_after_every_restart(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    board = SimulatedBoard(get_profile("thermostat"), seed=7)
    p = f"{base_topic}/thermo"
    report = {
        "topic": f"{p}/ds/heater/set",
        "error": "forbidden",
        "code": None,
        "name": "RETAINED_COMMAND",
        "message": "retained command ignored: commands must not be published with the "
        "retain flag (a stale retained command would re-run on every restart)",
    }
    async with PtyBoard(board, link=tmp_path / "ttyT") as pty:
        settings = make_settings(mqtt_broker, base_topic, [{"id": "thermo", "port": str(pty.link)}])
        await publish(mqtt_broker, f"{p}/ds/heater/set", b"on", retain=True)
        try:
            for run in range(2):
                # The second run resumes the first one's persistent session: its
                # subscriptions exist already, and the retained command must still be
                # reported rather than sit on the broker unnoticed.
                async with Recorder(mqtt_broker, f"{p}/error") as rec, running_bridge(settings):
                    got = await rec.wait_for(f"{p}/error", timeout=5)
                    assert got.json() == report, f"run {run}"
                    assert got.retain is False
        finally:
            await publish(mqtt_broker, f"{p}/ds/heater/set", b"", retain=True)


async def test_inbound_queue_drops_are_counted(mqtt_broker: Broker, base_topic: str) -> None:
    """aiomqtt's message queue, bounded at 5: with the reader blocked on the first message,
    5 of the next 50 wait and 45 are dropped and counted (this fails if aiomqtt stops
    filling its queue with `put_nowait`)."""
    handled: list[bytes] = []
    entered = asyncio.Event()
    release = asyncio.Event()

    async def on_message(message: aiomqtt.Message) -> None:
        assert isinstance(message.payload, bytes)
        handled.append(message.payload)
        entered.set()
        await release.wait()

    async def on_connect() -> None:
        pass

    settings = MqttSection(url=mqtt_broker.url, client_id=f"inbound-{base_topic}")
    conn = MqttConnection(
        settings, f"{base_topic}/bridge/test/state", on_message, on_connect, inbound_messages=5
    )
    await conn.subscribe([f"{base_topic}/flood"])
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_connected(5)
        await publish(mqtt_broker, f"{base_topic}/flood", b"first")
        await asyncio.wait_for(entered.wait(), 5)
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
            for n in range(50):
                await client.publish(f"{base_topic}/flood", str(n).encode(), qos=1)
        await wait_until(lambda: conn.inbound.dropped == 45)
        release.set()
        await wait_until(lambda: len(handled) == 6)
        assert handled == [b"first", b"0", b"1", b"2", b"3", b"4"]
        assert conn.inbound.dropped == 45 and conn.inbound.queued_bytes == 0
    finally:
        release.set()
        await conn.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_inbound_drops_in_health_and_metrics(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, "kitchen") as r:
        bridge = r.bridge
        blocked = asyncio.Event()
        release = asyncio.Event()

        async def block(message: aiomqtt.Message) -> None:
            blocked.set()
            await release.wait()

        topic = f"{base_topic}/block"
        bridge.route(topic, block)
        await bridge.mqtt.subscribe([topic, f"{base_topic}/junk"])
        await publish(mqtt_broker, topic, b"1")
        await asyncio.wait_for(blocked.wait(), 5)
        # The bridge's reader holds the first message; the queue takes 1000 more.
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
            for n in range(1010):
                await client.publish(f"{base_topic}/junk", str(n).encode(), qos=0)
            await client.publish(f"{base_topic}/junk", b"last", qos=1)
        await wait_until(lambda: bridge.mqtt.inbound.dropped == 11, timeout_s=10)
        release.set()
        assert bridge.health()["broker"]["inbound_dropped"] == 11
        body, _ = BridgeMetrics(bridge).render()
        assert b"conduyt_bridge_mqtt_inbound_dropped_total 11.0" in body
        assert await r.request("ds/light_percent/set", "3") == {"ok": True, "value": 3}


async def test_heap_trimmed_after_a_burst_and_after_the_last_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`malloc_trim` runs once 4 MiB of input went through a drained queue; one asked for
    within a second of the last is put off, not lost (the end of a flood is trimmed)."""
    calls: list[float] = []

    def trim(pad: int) -> int:
        calls.append(time.monotonic())
        return 1

    monkeypatch.setattr(inbound, "_malloc_trim", trim)
    monkeypatch.setattr(inbound, "TRIM_INTERVAL_S", 0.2)
    stats = inbound.InboundStats()
    stats.release_memory()
    assert calls == []  # nothing received yet
    stats.received_bytes = inbound.TRIM_AFTER_BYTES
    stats.release_memory()
    assert len(calls) == 1
    stats.received_bytes += inbound.TRIM_AFTER_BYTES - 1
    stats.release_memory()
    assert len(calls) == 1  # not enough new input
    stats.received_bytes += 1
    stats.release_memory()
    stats.release_memory()
    assert len(calls) == 1  # too soon: put off once
    await wait_until(lambda: len(calls) == 2, timeout_s=2)
    assert calls[1] - calls[0] >= 0.2
    await asyncio.sleep(0.3)
    assert len(calls) == 2
