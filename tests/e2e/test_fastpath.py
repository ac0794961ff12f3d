"""The QoS 0 fast path against a real Mosquitto (`docs/architecture.md` §6.1): QoS 0 packets
encoded by the bridge share the socket with paho's QoS 1 traffic without overtaking it,
a stalled broker backs up into the coalescing outbox within `QOS0_BYTES_LIMIT`, and a
broker restart mid-flood ends in a reconnect with publishing resumed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
from support.broker import Broker
from support.harness import wait_until
from support.mqtt_client import retained_snapshot
from support.recorder import Recorder

from conduyt_bridge.app.config import MqttSection
from conduyt_bridge.northbound.mqtt.connection import PUBLISH_WINDOW, MqttConnection
from conduyt_bridge.northbound.mqtt.fastpath import QOS0_BYTES_LIMIT, register_writes_in_loop


async def _noop(*_: Any) -> None:
    return None


@contextlib.asynccontextmanager
async def connection(broker: Broker, base: str, **mqtt: Any) -> AsyncIterator[MqttConnection]:
    settings = MqttSection(url=broker.url, client_id=f"fast-{base}", **mqtt)
    conn = MqttConnection(settings, f"{base}/bridge/test/state", _noop, _noop)
    task = asyncio.create_task(conn.run())
    try:
        await conn.wait_connected(5)
        yield conn
    finally:
        await conn.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _interleave(broker: Broker, base: str, protocol: str) -> None:
    topic, coalesced = f"{base}/d/ds/x", f"{base}/d/ds/y"
    n = 300
    # Order is checked as the broker received it: a QoS 0 subscription gets every message
    # at QoS 0 in arrival order. (On delivery a broker keeps order per QoS level only,
    # MQTT 5.0 §4.6: Mosquitto lets QoS 0 pass QoS 1 held by a full in-flight window.)
    # The QoS 2 subscriber checks each message's QoS.
    async with (
        Recorder(broker, f"{base}/d/#", qos=0) as rec,
        Recorder(broker, topic, qos=2) as rec_qos,
        connection(broker, base, protocol=protocol) as conn,
    ):
        for i in range(n):
            # Every 10th is a retained QoS 1 state; 30 of them exceed the QoS 1 window, so
            # some wait in the outbox, and the QoS 0 ones after them must wait too.
            qos1 = i % 10 == 0
            kw: dict[str, Any] = {"qos": 1 if qos1 else 0, "retain": qos1}
            conn.publish(topic, str(i), coalesce=False, **kw)
            conn.publish(coalesced, str(i), **kw)
            if i % 50 == 49:
                await asyncio.sleep(0)
        assert conn._in_flight == PUBLISH_WINDOW  # the window was full at some point
        await wait_until(lambda: len(rec.messages(topic)) == n, timeout_s=10)
        got = rec.messages(topic)
        assert [m.payload for m in got] == [str(i).encode() for i in range(n)]
        assert [m.retain for m in got] == [i % 10 == 0 for i in range(n)]
        await wait_until(lambda: len(rec_qos.messages(topic)) == n, timeout_s=10)
        qos = {int(m.payload): m.qos for m in rec_qos.messages(topic)}
        assert qos == {i: 1 if i % 10 == 0 else 0 for i in range(n)}
        await rec.wait_for(coalesced, payload=str(n - 1))
        # Coalesced: values may be skipped (the latest wins), never go backwards.
        values = [int(m.payload) for m in rec.messages(coalesced)]
        assert values == sorted(set(values)) and values[-1] == n - 1


async def test_qos0_never_overtakes_qos1_on_mqtt5(mqtt_broker: Broker, base_topic: str) -> None:
    await _interleave(mqtt_broker, base_topic, "5")


async def test_qos0_never_overtakes_qos1_on_mqtt311(mqtt_broker: Broker, base_topic: str) -> None:
    await _interleave(mqtt_broker, base_topic, "3.1.1")


async def test_replies_with_properties_keep_their_place(
    mqtt_broker: Broker, base_topic: str
) -> None:
    """A QoS 0 message with MQTT 5 properties goes through paho; the fast path's buffer
    goes first, so it lands between the messages published around it."""
    from conduyt_bridge.northbound.mqtt.connection import publish_properties

    topic = f"{base_topic}/reply"
    async with Recorder(mqtt_broker, topic) as rec, connection(mqtt_broker, base_topic) as conn:
        conn.publish(topic, b"a", coalesce=False)
        conn.publish(topic, b"b", coalesce=False, properties=publish_properties(b"c1"))
        conn.publish(topic, b"c", coalesce=False)
        await wait_until(lambda: len(rec.messages(topic)) == 3)
        got = rec.messages(topic)
        assert [(m.payload, m.correlation_data) for m in got] == [
            (b"a", None),
            (b"b", b"c1"),
            (b"c", None),
        ]


async def test_a_stalled_broker_backs_up_into_the_outbox_within_the_byte_bound(
    restartable_broker: Broker, base_topic: str
) -> None:
    broker = restartable_broker
    assert broker.process is not None and broker.process.pid is not None
    pid = broker.process.pid
    topics = [f"{base_topic}/flood/{k}" for k in range(8)]
    payload = b"x" * 200
    async with connection(broker, base_topic) as conn:
        writer = conn._writer
        assert writer is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            peak = 0
            # ~40 MB: far past the kernel's socket buffers and the writer's bound.
            for i in range(200_000):
                conn.publish(topics[i % 8], payload + str(i).encode(), retain=True)
                if i % 1000 == 999:
                    await asyncio.sleep(0)
                    peak = max(peak, writer.waiting_bytes)
            await asyncio.sleep(0)
            assert conn.queue_depth == 8  # one coalesced message per topic waits
            assert len(conn._outbox.topics) == 8
            assert conn.dropped == 0
            # The bound holds to within one event-loop iteration's buffer.
            assert QOS0_BYTES_LIMIT <= peak <= QOS0_BYTES_LIMIT + 64 * 1024
            assert conn.queue_bytes >= writer.waiting_bytes - writer.buffered_bytes
        finally:
            os.kill(pid, signal.SIGCONT)
        await wait_until(lambda: conn.queue_depth == 0, timeout_s=15)
        await wait_until(lambda: writer.waiting_bytes == 0, timeout_s=15)
        last = {t: payload + str(199_992 + k).encode() for k, t in enumerate(topics)}
        snapshot: dict[str, bytes] = {}
        for _ in range(50):
            snapshot = await retained_snapshot(broker, f"{base_topic}/flood/#")
            if snapshot == last:
                break
            await asyncio.sleep(0.1)
        assert snapshot == last


async def test_broker_restart_during_fast_path_publishing(
    restartable_broker: Broker, base_topic: str
) -> None:
    broker = restartable_broker
    topic = f"{base_topic}/d/ds/count"
    counter = 0
    errors: list[BaseException] = []

    async def flood(conn: MqttConnection) -> None:
        nonlocal counter
        try:
            while True:
                for _ in range(20):
                    counter += 1
                    conn.publish(topic, str(counter), coalesce=False)
                await asyncio.sleep(0.002)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            errors.append(exc)
            raise

    async with (
        Recorder(broker, topic, reconnect=True) as rec,
        connection(broker, base_topic, reconnect_max_s=0.5) as conn,
    ):
        task = asyncio.create_task(flood(conn))
        try:
            await rec.wait_for(topic, timeout=5)
            await broker.astop()
            await wait_until(lambda: not conn.connected)
            stopped_at = counter
            await broker.astart()
            await conn.wait_connected(10)
            assert conn.reconnects >= 1
            # Publishing resumed on the new session's writer.
            await rec.wait_for(topic, lambda p: int(p) > stopped_at, timeout=10)
            assert errors == [] and not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        values = [int(m.payload) for m in rec.messages(topic)]
        assert values == sorted(values)  # QoS 0 may be lost in the outage, never reordered


async def test_a_link_closed_right_after_a_write_registration_logs_nothing(
    mqtt_broker: Broker,
) -> None:
    """Regression: paho asks to watch the socket for writability and the link closes in
    the same loop iteration (a broker stopping under load). aiomqtt's deferred
    `add_writer` then met a closed descriptor and asyncio logged it as an error;
    `register_writes_in_loop` registers at once, so paho's unregister undoes it in order."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        for install in (False, True):
            errors.clear()
            async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as client:
                if install:
                    register_writes_in_loop(client)
                paho = client._client
                assert not paho._registered_write
                paho._call_socket_register_write()
                paho._sock_close()  # the link ends before the next loop iteration
                for _ in range(3):
                    await asyncio.sleep(0)
            if install:
                assert errors == []
            else:  # the unpatched way still shows the race, so this test can fail
                assert any("add_writer" in str(c.get("message", "")) for c in errors), errors
    finally:
        loop.set_exception_handler(previous)
