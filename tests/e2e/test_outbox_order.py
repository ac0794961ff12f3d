"""Outbox order when in-flight QoS 1 publishes fail (the link dropped during a burst):
they go back in their original publish order, ahead of newer messages, so the messages
for one topic never change order (a discovery hand-over's removal must never arrive after
the new config for the same topic)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from support.broker import Broker
from support.harness import wait_until
from support.mqtt_client import retained_snapshot

from conduyt_bridge.app.config import MqttSection
from conduyt_bridge.northbound.mqtt import connection as conn_mod
from conduyt_bridge.northbound.mqtt.connection import MqttConnection


class _Paho:
    """What `MqttConnection` uses of the paho client under aiomqtt for QoS 0."""

    def __init__(self, sent: list[tuple[str, bytes]]) -> None:
        self.sent = sent
        self._out_packet: list[object] = []

    def publish(self, topic: str, payload: bytes, *_: Any) -> mqtt.MQTTMessageInfo:
        self.sent.append((topic, payload))
        info = mqtt.MQTTMessageInfo(0)
        info.rc = mqtt.MQTT_ERR_SUCCESS
        return info


class DroppingClient:
    """Stands in for the aiomqtt client: QoS 1 publishes wait until `drop()`, then fail
    as aiomqtt's do when their PUBACK never comes; QoS 0 ones (handed to paho directly)
    are recorded as sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self._down = asyncio.Event()
        self._client = _Paho(self.sent)  # QoS 0 goes straight to paho

    def drop(self) -> None:
        self._down.set()

    async def publish(self, topic: str, payload: bytes, *_: Any, **__: Any) -> None:
        await self._down.wait()
        raise aiomqtt.MqttError("Operation timed out")


async def _noop(*_: Any) -> None:
    return None


def _connected(client: DroppingClient) -> MqttConnection:
    conn = MqttConnection(MqttSection(), "t/bridge/test/state", _noop, _noop)
    conn._client = client  # type: ignore[assignment]
    conn._connected.set()
    return conn


def _outbox(conn: MqttConnection) -> list[tuple[str, bytes]]:
    return [(m.topic, m.payload) for _, m in conn._outbox.values()]


async def test_failed_in_flight_publishes_go_back_ahead_of_newer_messages() -> None:
    client = DroppingClient()
    conn = _connected(client)
    # In flight when the link drops: a hand-over's removal, then a state.
    conn.publish("ha/sensor/n/t/config", b"", qos=1, retain=True, coalesce=False)
    conn.publish("t/dev/status", b"online", qos=1, retain=True)
    conn._connected.clear()
    # Published while the link is down: the new config for the same topic, and others.
    conn.publish("ha/sensor/n/t/config", b'{"new":1}', qos=1, retain=True, coalesce=False)
    conn.publish("t/dev/ds/x", b"7", qos=1, retain=True)
    client.drop()
    await asyncio.sleep(0.05)
    assert _outbox(conn) == [
        ("ha/sensor/n/t/config", b""),
        ("t/dev/status", b"online"),
        ("ha/sensor/n/t/config", b'{"new":1}'),
        ("t/dev/ds/x", b"7"),
    ]
    seqs = [seq for seq, _ in conn._outbox.values()]
    assert seqs == sorted(seqs)


class OneByOneClient:
    """QoS 1 publishes that fail one at a time, in the order the test chooses."""

    def __init__(self) -> None:
        self.fail: dict[bytes, asyncio.Event] = {}

    async def publish(self, topic: str, payload: bytes, *_: Any, **__: Any) -> None:
        event = self.fail.setdefault(payload, asyncio.Event())
        await event.wait()
        raise aiomqtt.MqttError("Operation timed out")


async def test_failures_in_any_order_are_requeued_in_publish_order() -> None:
    client = OneByOneClient()
    conn = MqttConnection(MqttSection(), "t/bridge/test/state", _noop, _noop)
    conn._client = client  # type: ignore[assignment]
    conn._connected.set()
    for i in range(5):
        conn.publish(f"t/dev/ds/{i}", str(i).encode(), qos=1)
    conn._connected.clear()
    conn.publish("t/dev/ds/late", b"L", qos=1)
    await asyncio.sleep(0)
    for payload in (b"3", b"4", b"1", b"0", b"2"):  # newest first, then mixed
        client.fail[payload].set()
        await asyncio.sleep(0.01)
    assert conn._in_flight == 0
    assert [m.payload for _, m in conn._outbox.values()] == [b"0", b"1", b"2", b"3", b"4", b"L"]


async def test_a_newer_message_for_the_topic_still_supersedes_the_failed_one() -> None:
    client = DroppingClient()
    conn = _connected(client)
    conn.publish("t/dev/status", b"online", qos=1, retain=True)
    conn.publish("t/dev/mode", b"a", qos=1, retain=True)
    conn._connected.clear()
    conn.publish("t/dev/status", b"offline", qos=1, retain=True)  # waits in the outbox
    conn._connected.set()
    conn.publish("t/dev/mode", b"b", qos=0, retain=True)  # goes out at once
    client.drop()
    await asyncio.sleep(0.05)
    # Neither failed message comes back: each topic's newer value stands.
    assert _outbox(conn) == [("t/dev/status", b"offline")]
    assert client.sent == [("t/dev/mode", b"b")]


async def test_link_drop_mid_hand_over_keeps_the_new_config(
    restartable_broker: Broker, base_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real broker: the removal of a config is in flight (the broker is frozen, so no
    PUBACK) when the broker dies; the new config for the same topic is published while
    it is away. After the reconnect the new config must be what stays retained."""
    monkeypatch.setattr(conn_mod, "PUBLISH_TIMEOUT_S", 0.5)  # fail within the outage
    broker = restartable_broker
    assert broker.process is not None
    config = f"{base_topic}/ha/sensor/n/t/config"
    settings = MqttSection(url=broker.url, client_id=f"order-{base_topic}")
    conn = MqttConnection(settings, f"{base_topic}/bridge/test/state", _noop, _noop)
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_connected(5)
        conn.publish(config, b'{"old":1}', qos=1, retain=True, coalesce=False)
        await wait_until(lambda: conn.published >= 1)
        pid = broker.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        conn.publish(config, b"", qos=1, retain=True, coalesce=False)  # the removal
        await asyncio.sleep(0.1)
        assert conn._in_flight == 1
        os.kill(pid, signal.SIGKILL)
        await broker.astop()
        await wait_until(lambda: not conn.connected)
        conn.publish(config, b'{"new":1}', qos=1, retain=True, coalesce=False)
        await wait_until(lambda: conn._in_flight == 0)  # the removal failed and went back
        assert [m.payload for _, m in conn._outbox.values()] == [b"", b'{"new":1}']
        await broker.astart()
        await conn.wait_connected(10)
        await wait_until(lambda: conn.queue_depth == 0 and conn._in_flight == 0)
        assert await retained_snapshot(broker, config) == {config: b'{"new":1}'}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
