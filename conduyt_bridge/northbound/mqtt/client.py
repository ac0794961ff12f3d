"""aiomqtt clients for the broker: how they are made, and the one-shot read of retained
messages on a helper client.

`build_client` applies the `[mqtt]` settings (`docs/architecture.md` §6): credentials,
TLS, the Will on the bridge state topic and the persistent session (MQTT 5:
`clean_start=False` with a SessionExpiryInterval; 3.1.1: `clean_session=False`,
`docs/libraries.md` §1). `MqttSettings` is what it reads of them, so this layer does not
import the configuration (`conduyt_bridge.app.config.MqttSection` satisfies it).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conduyt_bridge.northbound.mqtt.inbound import InboundStats, inbound_queue_type
from conduyt_bridge.northbound.mqtt.outbox import OUTBOX_LIMIT, OutMessage

__all__ = [
    "PUBLISH_WINDOW",
    "MqttSettings",
    "build_client",
    "publish_properties",
    "read_retained",
    "session_client",
]

PUBLISH_WINDOW = 20
"""Concurrent QoS 1 publish calls in flight (aiomqtt slows down with many,
`docs/libraries.md` §1). Also paho's in-flight limit (`build_client`), so paho never holds a
QoS 1 message back unsent, where a later QoS 0 one on the fast path would overtake it
(`docs/architecture.md` §6.1); and Mosquitto's default Receive Maximum (20), which paho
does not read from the CONNACK."""


class MqttSettings(Protocol):
    """The `[mqtt]` settings the connection reads (`conduyt_bridge.app.config.MqttSection`)."""

    @property
    def url(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    @property
    def username(self) -> str: ...

    @property
    def protocol(self) -> str:
        """`"5"` or `"3.1.1"`."""
        ...

    @property
    def keepalive_s(self) -> int: ...

    @property
    def session_expiry_s(self) -> int: ...

    @property
    def tls_ca(self) -> Path | None: ...

    @property
    def tls_cert(self) -> Path | None: ...

    @property
    def tls_key(self) -> Path | None: ...

    @property
    def tls_insecure(self) -> bool: ...

    @property
    def reconnect_max_s(self) -> float: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def tls(self) -> bool: ...

    def resolved_password(self) -> str: ...


def build_client(
    settings: MqttSettings,
    will: aiomqtt.Will,
    queue_type: type[asyncio.Queue[aiomqtt.Message]],
    *,
    identifier: str | None,
    persistent: bool,
    timeout_s: float,
) -> aiomqtt.Client:
    """An aiomqtt client for the broker of `settings`, with its credentials and TLS.

    `persistent`: a long-lived client with `will` and a persistent session (a clean one
    when `session_expiry_s` is 0); otherwise a throwaway helper connection without Will or
    session.
    `identifier` replaces the configured client id; `queue_type` is the incoming queue
    (`conduyt_bridge.northbound.mqtt.inbound.inbound_queue_type`); `timeout_s` bounds each
    call such as a QoS 1 publish; at most `PUBLISH_WINDOW` QoS 1 messages are in flight.
    """
    s = settings
    v5 = s.protocol == "5"
    kwargs: dict[str, Any] = {}
    if not persistent:
        kwargs["protocol"] = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    elif s.session_expiry_s == 0:
        # No session to keep: start clean (MQTT 5 Clean Start, no expiry; 3.1.1 Clean
        # Session), as a Sparkplug edge node must (`docs/sparkplug.md` §1).
        version = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
        kwargs.update(protocol=version, **{"clean_start" if v5 else "clean_session": True})
    elif v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.session_expiry_s
        kwargs.update(protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props)
    else:
        kwargs.update(protocol=aiomqtt.ProtocolVersion.V311, clean_session=False)
    if s.tls:
        kwargs["tls_params"] = aiomqtt.TLSParameters(
            ca_certs=str(s.tls_ca) if s.tls_ca else None,
            certfile=str(s.tls_cert) if s.tls_cert else None,
            keyfile=str(s.tls_key) if s.tls_key else None,
            cert_reqs=ssl.CERT_NONE if s.tls_insecure else ssl.CERT_REQUIRED,
        )
        if s.tls_insecure:
            kwargs["tls_insecure"] = True
    password = s.resolved_password()
    client = aiomqtt.Client(
        s.host,
        s.port,
        identifier=identifier or s.client_id,
        username=s.username or None,
        password=password or None,
        will=will if persistent else None,
        keepalive=s.keepalive_s,
        timeout=timeout_s,
        max_queued_outgoing_messages=OUTBOX_LIMIT,
        max_inflight_messages=PUBLISH_WINDOW,
        queue_type=queue_type,
        **kwargs,
    )
    # Only a warning threshold: the window bounds ordinary publishes, but the final
    # messages at shutdown (an `offline` per board) go out together past it.
    client.pending_calls_threshold = OUTBOX_LIMIT
    return client


def session_client(
    settings: MqttSettings,
    will: OutMessage,
    inbound: InboundStats,
    limits: tuple[int, int],
    *,
    identifier: str,
    persistent: bool,
    timeout_s: float,
) -> aiomqtt.Client:
    """`build_client` for a connection: `persistent`, its own client with `will` and an
    incoming queue bounded by `limits` (messages, bytes) counting into `inbound`;
    otherwise a throwaway helper (no Will, no session) whose incoming queue has no bound.
    """
    queue_type = (
        inbound_queue_type(inbound, *limits)
        if persistent
        # A helper only reads the retained messages of the filters it asked for
        # (`fetch_retained`), drains them as they come and closes after a few
        # seconds; a bound would silently cut a large sweep or replay short.
        else inbound_queue_type(InboundStats(), 0, None)
    )
    return build_client(
        settings,
        aiomqtt.Will(will.topic, will.payload, qos=will.qos, retain=will.retain),
        queue_type,
        identifier=identifier,
        persistent=persistent,
        timeout_s=timeout_s,
    )


async def read_retained(
    client: aiomqtt.Client, filters: list[str], quiet_s: float, limit_s: float
) -> dict[str, bytes]:
    """Retained messages under `filters` (topic → payload), read on `client`, a helper
    connection that is already connected.

    A broker sends retained messages in one burst after the SUBACK; reading stops once
    nothing arrived for `quiet_s` seconds, or after `limit_s` in all.
    Raises aiomqtt.MqttError.
    """
    found: dict[str, bytes] = {}
    await client.subscribe([(f, 0) for f in filters])
    messages = aiter(client.messages)
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(min(quiet_s, left)):
                message = await anext(messages)
        except TimeoutError:
            break
        payload = message.payload
        # Some brokers (amqtt 0.12) also send retained messages matching other
        # sessions' subscriptions: keep only what was asked for.
        if not any(message.topic.matches(f) for f in filters):
            continue
        if message.retain and isinstance(payload, bytes) and payload:
            found[message.topic.value] = payload
    return found


def publish_properties(correlation_data: bytes | None) -> Properties:
    """MQTT 5 PUBLISH properties carrying `correlation_data` (for request/response)."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if correlation_data is not None:
        props.CorrelationData = correlation_data
    return props
