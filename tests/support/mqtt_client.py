"""One-shot MQTT v5 clients for the tests: connect, publish or look, disconnect.

* :func:`new_client` - an (unconnected) aiomqtt MQTT v5 client for a broker or URL,
  optionally with a persistent session; :class:`support.recorder.Recorder` uses it too.
* :func:`publish` - one-shot publish; :func:`publish_properties` builds MQTT v5 PUBLISH
  properties (response topic, correlation data, user properties, content type).
* :func:`retained_snapshot` - the retained messages currently under a topic filter.
"""

# The helpers take `timeout=` arguments on purpose (the suite-wide API), so the
# "use asyncio.timeout instead" rule does not fit here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .net import BrokerLike, address

__all__ = ["new_client", "publish", "publish_properties", "retained_snapshot"]


def new_client(
    target: BrokerLike | str,
    *,
    identifier: str | None = None,
    persistent: bool = False,
    session_expiry: int = 300,
    timeout: float = 10.0,
    username: str | None = None,
    password: str | None = None,
) -> aiomqtt.Client:
    """An MQTT v5 aiomqtt client for *target* (persistent session if asked)."""
    host, port = address(target)
    properties: Properties | None = None
    clean_start: paho.CleanStartOption = True
    if persistent:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry
        clean_start = False
    return aiomqtt.Client(
        host,
        port,
        identifier=identifier or f"test-{uuid.uuid4().hex[:12]}",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=clean_start,
        properties=properties,
        timeout=timeout,
        username=username,
        password=password,
    )


async def publish(
    url_or_broker: BrokerLike | str,
    topic: str,
    payload: bytes | str | int | float | None,
    *,
    retain: bool = False,
    qos: int = 1,
    properties: Properties | None = None,
    timeout: float = 10.0,
    username: str | None = None,
    password: str | None = None,
) -> None:
    """Connect (MQTT v5), publish one message and disconnect.

    With QoS 1/2 this returns after the broker acknowledged the message. An empty
    payload (``b""`` or None) with ``retain=True`` clears a retained message.
    """
    async with new_client(
        url_or_broker, timeout=timeout, username=username, password=password
    ) as client:
        await client.publish(topic, payload, qos=qos, retain=retain, properties=properties)


def publish_properties(
    *,
    response_topic: str | None = None,
    correlation_data: bytes | None = None,
    user_properties: Sequence[tuple[str, str]] = (),
    content_type: str | None = None,
) -> Properties:
    """Build PUBLISH properties (for MQTT v5 request/response tests)."""
    props = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation_data is not None:
        props.CorrelationData = correlation_data
    if user_properties:
        props.UserProperty = list(user_properties)
    if content_type is not None:
        props.ContentType = content_type
    return props


async def retained_snapshot(
    broker: BrokerLike | str,
    topic_filter: str,
    settle: float = 0.5,
    timeout: float = 10.0,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, bytes]:
    """The retained messages under *topic_filter*: ``{topic: payload}``.

    Subscribes with a fresh clean session and collects the retained messages the broker
    sends, until nothing arrived for *settle* seconds (at most *timeout* seconds in all).
    Live (non-retained) messages that happen to arrive are ignored.
    """
    snapshot: dict[str, bytes] = {}
    async with new_client(broker, username=username, password=password) as client:
        await client.subscribe(topic_filter, qos=1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        messages = aiter(client.messages)
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(anext(messages), min(settle, remaining))
            except TimeoutError:
                break
            if message.retain:
                snapshot[message.topic.value] = bytes(message.payload)
    return snapshot
