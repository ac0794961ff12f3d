"""Tests of the test broker fixture and of the MQTT helpers themselves."""

from __future__ import annotations

import asyncio
import re

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support.broker import Broker
from support.mqtt_client import publish, publish_properties, retained_snapshot
from support.net import parse_mqtt_url, port_accepts
from support.recorder import Recorder


def test_parse_mqtt_url() -> None:
    assert parse_mqtt_url("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_mqtt_url("mqtt://broker") == ("broker", 1883)
    assert parse_mqtt_url("mqtts://broker") == ("broker", 8883)
    assert parse_mqtt_url("localhost:1999") == ("localhost", 1999)
    with pytest.raises(ValueError, match="scheme"):
        parse_mqtt_url("http://broker")


def test_base_topic_is_unique(base_topic: str) -> None:
    assert re.fullmatch(r"t-[0-9a-f]{8}", base_topic)


def test_broker_fixture_shape(mqtt_broker: Broker) -> None:
    assert mqtt_broker.url.startswith("mqtt://")
    assert port_accepts(mqtt_broker.host, mqtt_broker.port)
    if mqtt_broker.kind == "mosquitto":
        assert mqtt_broker.restart is not None
        assert mqtt_broker.host == "127.0.0.1"
        assert mqtt_broker.port != 1883  # never the system broker
    else:
        assert mqtt_broker.restart is None


async def test_publish_and_record(mqtt_broker: Broker, base_topic: str) -> None:
    topic = f"{base_topic}/a"
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec:
        await publish(mqtt_broker, topic, "one", qos=1)
        first = await rec.wait_for(topic)
        assert first.payload == b"one"
        assert first.text == "one"
        assert first.qos == 1
        assert first.retain is False

        await publish(mqtt_broker, topic, b"two", qos=0)
        # wait_for sees already-recorded messages; wait_for_new only later ones.
        assert (await rec.wait_for(topic)).payload == b"one"
        second = await rec.wait_for(topic, lambda p: p == b"two")
        assert second.qos == 0

        waiter = asyncio.create_task(rec.wait_for_new(topic))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        await publish(mqtt_broker, topic, b'{"v": 3}')
        third = await waiter
        assert third.json() == {"v": 3}

        assert [m.payload for m in rec.messages(topic)] == [b"one", b"two", b'{"v": 3}']
        assert rec.messages(f"{base_topic}/+") == rec.messages(topic)
        rec.clear()
        assert rec.messages() == []
        with pytest.raises(TimeoutError, match="no message"):
            await rec.wait_for(topic, timeout=0.2)


async def test_mark_and_wait_for_after(mqtt_broker: Broker, base_topic: str) -> None:
    topic = f"{base_topic}/x"
    async with Recorder(mqtt_broker, topic) as rec:
        mark = rec.mark()
        await publish(mqtt_broker, topic, "fast")  # arrives before we start waiting
        await asyncio.sleep(0.1)
        got = await rec.wait_for_after(mark, topic, payload="fast")
        assert got.payload == b"fast"
        assert rec.since(mark) == [got]
        await rec.assert_nothing(topic, 0.1)


async def test_retained_messages(mqtt_broker: Broker, base_topic: str) -> None:
    await publish(mqtt_broker, f"{base_topic}/state", "online", retain=True)
    await publish(mqtt_broker, f"{base_topic}/ds/t", "21.5", retain=True)
    await publish(mqtt_broker, f"{base_topic}/live", "not kept")

    snapshot = await retained_snapshot(mqtt_broker, f"{base_topic}/#", settle=0.2)
    assert snapshot == {f"{base_topic}/state": b"online", f"{base_topic}/ds/t": b"21.5"}

    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec:
        state = await rec.wait_for(f"{base_topic}/state")
        assert state.retain is True
        assert state.payload == b"online"
        # Retain As Published: a live retained publish keeps its flag, others do not.
        await publish(mqtt_broker, f"{base_topic}/ds/t", "22", retain=True)
        await publish(mqtt_broker, f"{base_topic}/live", "x")
        assert (await rec.wait_for(f"{base_topic}/ds/t", payload="22")).retain is True
        assert (await rec.wait_for(f"{base_topic}/live")).retain is False

    # An empty retained payload clears it.
    await publish(mqtt_broker, f"{base_topic}/state", b"", retain=True)
    snapshot = await retained_snapshot(mqtt_broker, f"{base_topic}/#", settle=0.2)
    assert snapshot == {f"{base_topic}/ds/t": b"22"}


async def test_properties_are_recorded(mqtt_broker: Broker, base_topic: str) -> None:
    topic = f"{base_topic}/req"
    props = publish_properties(
        response_topic=f"{base_topic}/resp",
        correlation_data=b"\x01\x02",
        user_properties=[("k", "v")],
    )
    async with Recorder(mqtt_broker, topic) as rec:
        await publish(mqtt_broker, topic, "{}", properties=props)
        got = await rec.wait_for(topic)
    assert got.properties is not None
    assert got.properties.ResponseTopic == f"{base_topic}/resp"
    assert got.correlation_data == b"\x01\x02"
    assert got.user_properties == [("k", "v")]


async def test_restart_keeps_persistent_session_messages(
    restartable_broker: Broker, base_topic: str
) -> None:
    """A message queued for an offline persistent session survives a broker restart."""
    broker = restartable_broker
    topic = f"{base_topic}/cmd"
    client_id = f"persist-{base_topic}"

    def persistent_client() -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        return aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
        )

    async with persistent_client() as client:
        await client.subscribe(topic, qos=1)
    # Offline now; a retained message and a queued QoS 1 message for the session.
    await publish(broker, f"{base_topic}/kept", "r", retain=True)
    await publish(broker, topic, "while-away", qos=1)

    await broker.arestart()
    assert broker.is_running()

    async with persistent_client() as client:
        message = await asyncio.wait_for(anext(aiter(client.messages)), 5)
        assert message.topic.value == topic
        assert message.payload == b"while-away"
    assert await retained_snapshot(broker, f"{base_topic}/#", settle=0.2) == {
        f"{base_topic}/kept": b"r"
    }


async def test_stop_start_separately(restartable_broker: Broker, base_topic: str) -> None:
    broker = restartable_broker
    await broker.astop()
    assert not broker.is_running()
    assert not port_accepts(broker.host, broker.port)
    with pytest.raises(aiomqtt.MqttError):
        await publish(broker, f"{base_topic}/x", "down", timeout=1)
    await broker.astart()
    assert port_accepts(broker.host, broker.port)
    await publish(broker, f"{base_topic}/x", "up")


async def test_recorder_reconnects_after_restart(
    restartable_broker: Broker, base_topic: str
) -> None:
    broker = restartable_broker
    topic = f"{base_topic}/s"
    async with Recorder(broker, f"{base_topic}/#", reconnect=True) as rec:
        await publish(broker, topic, "before", retain=True)
        await rec.wait_for(topic, payload="before")
        await broker.astop()
        await broker.astart()
        await publish(broker, topic, "after")
        assert (await rec.wait_for(topic, payload="after", timeout=10)).retain is False
        assert rec.connections >= 2
        # The resumed session did not re-send the retained message.
        assert [m.payload for m in rec.messages(topic)] == [b"before", b"after"]


async def test_recorder_without_reconnect_reports_loss(
    restartable_broker: Broker, base_topic: str
) -> None:
    broker = restartable_broker
    async with Recorder(broker, f"{base_topic}/#") as rec:
        broker.stop()
        with pytest.raises(aiomqtt.MqttError):
            await rec.wait_for(f"{base_topic}/never", timeout=5)
        assert not rec.connected


def test_leaves_broker_stopped(restartable_broker: Broker) -> None:
    """Stops the broker and does not start it: the next test must find it running."""
    restartable_broker.stop()
    assert not restartable_broker.is_running()


def test_broker_is_running_again(broker: Broker) -> None:
    assert broker.is_running()
    assert port_accepts(broker.host, broker.port)
