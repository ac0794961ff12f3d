"""MqttConnection outbox rules that a live broker cannot provoke on demand: a QoS 1
publish that fails after a newer message for the same topic went out must not be
re-queued (the retained state would go backwards)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiomqtt

from conduyt_bridge.app.config import MqttSection
from conduyt_bridge.northbound.mqtt.connection import MqttConnection


class FlakyClient:
    """Stands in for the aiomqtt client: `online` times out, everything else succeeds."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def publish(self, topic: str, payload: bytes, *args: Any, **kwargs: Any) -> None:
        if payload == b"online":
            await asyncio.sleep(0.05)
            raise aiomqtt.MqttError("Operation timed out")
        self.sent.append(payload)


async def _noop(*_: Any) -> None:
    return None


async def test_failed_older_publish_is_not_requeued_over_a_newer_one() -> None:
    conn = MqttConnection(MqttSection(), "t/bridge/test/state", _noop, _noop)
    client = FlakyClient()
    conn._client = client  # type: ignore[assignment]
    conn._connected.set()
    conn.publish("t/dev/status", b"online", qos=1, retain=True)
    conn.publish("t/dev/status", b"offline", qos=1, retain=True)
    await asyncio.sleep(0.1)
    assert client.sent == [b"offline"]
    assert conn.queue_depth == 0  # `online` was dropped, not re-queued behind `offline`


async def test_failed_publish_without_newer_message_is_requeued() -> None:
    conn = MqttConnection(MqttSection(), "t/bridge/test/state", _noop, _noop)
    conn._client = FlakyClient()  # type: ignore[assignment]
    conn._connected.set()
    conn.publish("t/dev/status", b"online", qos=1, retain=True)
    await asyncio.sleep(0.1)
    assert conn.queue_depth == 1  # goes out again after the next reconnect


async def test_publishing_while_disconnected_coalesces_per_topic() -> None:
    conn = MqttConnection(MqttSection(), "t/bridge/test/state", _noop, _noop)
    for value in (b"1", b"2", b"3"):
        conn.publish("t/dev/ds/x", value)
    conn.publish("t/dev/error", b"e1", coalesce=False)
    conn.publish("t/dev/error", b"e2", coalesce=False)
    assert conn.queue_depth == 3
    assert [m.payload for _, m in conn._outbox.values()] == [b"3", b"e1", b"e2"]


async def test_nagle_follows_the_publish_rate(mqtt_broker: Any, base_topic: str) -> None:
    """Latency first (TCP_NODELAY on); bulk publishing turns Nagle back on; idle again
    turns it off (measured: /set round trip 1 ms vs 44 ms; +20% throughput in bulk)."""
    import socket

    from conduyt_bridge.northbound.mqtt import connection as conn_mod

    settings = MqttSection(url=mqtt_broker.url, client_id=f"nagle-{base_topic}")
    conn = MqttConnection(settings, f"{base_topic}/bridge/test/state", _noop, _noop)
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_connected(5)
        sock = conn.client._client.socket()

        def nodelay() -> int:
            return int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        assert nodelay() == 1
        deadline = asyncio.get_running_loop().time() + 2 * conn_mod.RATE_WINDOW_S + 0.1
        while asyncio.get_running_loop().time() < deadline:
            for i in range(200):
                conn.publish(f"{base_topic}/bulk", str(i).encode())
            await asyncio.sleep(0.01)
        assert nodelay() == 0
        await asyncio.sleep(conn_mod.RATE_WINDOW_S + 0.05)
        conn.publish(f"{base_topic}/quiet", b"1")
        assert nodelay() == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_refused_connections_are_described_from_the_connack_code() -> None:
    from aiomqtt.exceptions import MqttConnectError
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from conduyt_bridge.northbound.mqtt.broker_errors import describe_broker_error

    bad_login = "broker refused the login: bad username or password"
    v5 = ReasonCode(PacketTypes.CONNACK, identifier=134)  # type: ignore[no-untyped-call]
    assert describe_broker_error(MqttConnectError(v5), "u") == bad_login
    assert describe_broker_error(MqttConnectError(4), "u") == bad_login  # MQTT 3.1.1
    assert describe_broker_error(MqttConnectError(5), "u") == bad_login  # Mosquitto's answer
    assert describe_broker_error(MqttConnectError(5), "") == (
        "broker refused the login: not authorized (anonymous access is off: set "
        "[mqtt] username and password)"
    )
    assert describe_broker_error(MqttConnectError(3), "u") == (
        "broker refused the connection: Server unavailable (CONNACK code 136)"
    )
    assert describe_broker_error(MqttConnectError(77), "u") == (
        "broker refused the connection: unknown reason (CONNACK code 77)"
    )
    assert describe_broker_error(aiomqtt.MqttError("Operation timed out")) == (
        "Operation timed out"
    )


async def test_fetch_retained_reads_more_topics_than_the_inbound_bound(
    mqtt_broker: Any, base_topic: str
) -> None:
    """A retained sweep larger than the main connection's inbound queue bound
    (`INBOUND_MESSAGE_LIMIT`) arrives whole: the helper connection has no bound."""
    from conduyt_bridge.northbound.mqtt.inbound import INBOUND_MESSAGE_LIMIT

    count = 3 * INBOUND_MESSAGE_LIMIT
    expected = {f"{base_topic}/r/{i}": f"v{i}".encode() for i in range(count)}
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as writer:
        for topic, payload in expected.items():
            await writer.publish(topic, payload, qos=0, retain=True)
        await writer.publish(f"{base_topic}/r/done", b"1", qos=1, retain=True)
    expected[f"{base_topic}/r/done"] = b"1"
    settings = MqttSection(url=mqtt_broker.url, client_id=f"sweep-{base_topic}")
    conn = MqttConnection(settings, f"{base_topic}/bridge/test/state", _noop, _noop)
    try:
        # A generous quiet gap: this test is about the bound, and a loaded CI machine can
        # pause a 3000-message burst for longer than the default 0.3 s.
        found = await conn.fetch_retained([f"{base_topic}/r/#"], quiet_s=2.0, limit_s=20.0)
        assert found == expected
    finally:
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as writer:
            for topic in expected:
                await writer.publish(topic, b"", qos=0, retain=True)
            await writer.publish(f"{base_topic}/r/done", b"", qos=1, retain=True)
