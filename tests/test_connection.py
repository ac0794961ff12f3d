"""MqttConnection outbox rules that a live broker cannot provoke on demand: a QoS 1
publish that fails after a newer message for the same topic went out must not be
re-queued (the retained state would go backwards)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt

from bridge.config import MqttSection
from bridge.mqtt.connection import MqttConnection


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
    conn = MqttConnection(MqttSection(), "t/bridge/state", _noop, _noop)
    client = FlakyClient()
    conn._client = client  # type: ignore[assignment]
    conn._connected.set()
    conn.publish("t/dev/status", b"online", qos=1, retain=True)
    conn.publish("t/dev/status", b"offline", qos=1, retain=True)
    await asyncio.sleep(0.1)
    assert client.sent == [b"offline"]
    assert conn.queue_depth == 0  # `online` was dropped, not re-queued behind `offline`


async def test_failed_publish_without_newer_message_is_requeued() -> None:
    conn = MqttConnection(MqttSection(), "t/bridge/state", _noop, _noop)
    conn._client = FlakyClient()  # type: ignore[assignment]
    conn._connected.set()
    conn.publish("t/dev/status", b"online", qos=1, retain=True)
    await asyncio.sleep(0.1)
    assert conn.queue_depth == 1  # goes out again after the next reconnect


async def test_publishing_while_disconnected_coalesces_per_topic() -> None:
    conn = MqttConnection(MqttSection(), "t/bridge/state", _noop, _noop)
    for value in (b"1", b"2", b"3"):
        conn.publish("t/dev/ds/x", value)
    conn.publish("t/dev/error", b"e1", coalesce=False)
    conn.publish("t/dev/error", b"e2", coalesce=False)
    assert conn.queue_depth == 3
    assert [m.payload for m in conn._outbox.values()] == [b"3", b"e1", b"e2"]
