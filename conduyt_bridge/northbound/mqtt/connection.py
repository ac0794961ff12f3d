"""The bridge's one MQTT connection: reconnect loop, Will, persistent session, outbox.

aiomqtt idioms per `docs/libraries.md` §1: one `Client` re-entered in a loop with capped backoff;
MQTT 5 persistent session needs `clean_start=False` and a SessionExpiryInterval (3.1.1:
`clean_session=False`); `client.messages` is one shared queue, read by one loop; publishes
go through a bounded window of concurrent calls. Publishing never blocks the caller: state
is queued in an outbox coalesced per topic (the latest value wins) and flushed whenever the
broker is reachable, so the boards' read loops never wait on the broker
(`docs/architecture.md` §6).

Beside it: `publishing` (the publish half of the class: fast path, QoS 1 window, outbox
drain), `outbox` (the coalescing outbox), `client` (aiomqtt clients from the `[mqtt]`
settings, the retained read), `subscriptions`, `packets` (QoS 0 PUBLISH encoding) and
`fastpath` (the QoS 0 writer, TCP_NODELAY: the only reach below aiomqtt's API, §6.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiomqtt
import structlog

from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.mqtt.broker_errors import describe_broker_error
from conduyt_bridge.northbound.mqtt.client import (
    PUBLISH_WINDOW,
    MqttSettings,
    publish_properties,
    read_retained,
    session_client,
)
from conduyt_bridge.northbound.mqtt.fastpath import (
    RATE_WINDOW_S,
    PublishRate,
    Qos0Writer,
    paho_queue_bytes,
    prepare_session,
    set_nodelay,
)
from conduyt_bridge.northbound.mqtt.inbound import (
    INBOUND_BYTES_LIMIT,
    INBOUND_MESSAGE_LIMIT,
    InboundStats,
)
from conduyt_bridge.northbound.mqtt.outbox import OUTBOX_LIMIT, Outbox, OutMessage
from conduyt_bridge.northbound.mqtt.publishing import QOS0_BACKOFF_S, Publishing
from conduyt_bridge.northbound.mqtt.subscriptions import Subscriptions
from conduyt_bridge.northbound.mqtt.urls import redact_url

__all__ = [
    "CLOSE_TIMEOUT_S",
    "OUTBOX_LIMIT",
    "PUBLISH_TIMEOUT_S",
    "PUBLISH_WINDOW",
    "QOS0_BACKOFF_S",
    "RATE_WINDOW_S",
    "ConnectHandler",
    "MessageHandler",
    "MqttConnection",
    "OutMessage",
    "publish_properties",
    "set_nodelay",
]

log = structlog.stdlib.get_logger("conduyt_bridge.northbound.mqtt")

CLOSE_TIMEOUT_S = 1.0
"""Longest `close` waits for the PUBACKs of its final messages. A broker stopped at the same
moment as the bridge (`docker compose down`) never sends them, and shutdown must not hang
on that; a live broker acknowledges within milliseconds."""


PUBLISH_TIMEOUT_S = 10.0
"""How long one QoS 1 publish may wait for its PUBACK before it counts as failed."""

MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]
ConnectHandler = Callable[[], Awaitable[None]]


class MqttConnection(Publishing):
    """Keeps one MQTT connection alive forever and publishes from a coalescing outbox.

    `on_connect` runs after every (re)connect, once subscriptions are in place, so the
    owner can republish its retained state. `on_message` gets every incoming message, one
    at a time, in arrival order.
    """

    def __init__(
        self,
        settings: MqttSettings,
        will_topic: str,
        on_message: MessageHandler,
        on_connect: ConnectHandler,
        *,
        will: Callable[[], OutMessage] | None = None,
        birth: bytes | None = b"online",
        client_id: str | None = None,
        inbound_messages: int = INBOUND_MESSAGE_LIMIT,
        inbound_bytes: int = INBOUND_BYTES_LIMIT,
    ) -> None:
        self.settings = settings
        self.will_topic = will_topic
        self._will = will
        """Builds the Will for each (re)connect (a Sparkplug NDEATH carries a new bdSeq
        every time); default: `offline` retained on `will_topic`."""
        self._birth = birth
        """Published retained on `will_topic` first thing after each connect (None: the
        owner announces itself in `on_connect`)."""
        self.client_id = client_id or settings.client_id
        """This connection's MQTT client id (an adapter with a session of its own, like
        Homie or Sparkplug, takes the bridge's id with a suffix)."""
        self.inbound = InboundStats()
        """Incoming messages queued and dropped (`conduyt_bridge.northbound.mqtt.inbound`), for
        health and metrics."""
        self._inbound_limits = (inbound_messages, inbound_bytes)
        self._on_message = on_message
        self._on_connect = on_connect
        self._subscriptions = Subscriptions()
        self._outbox = Outbox()
        """Messages waiting to go out (`conduyt_bridge.northbound.mqtt.outbox`)."""
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._down = asyncio.Event()
        """Set while the link is down (the complement of `_connected`, to wait on)."""
        self._down.set()
        self._client: aiomqtt.Client | None = None
        self._writer: Qos0Writer | None = None  # the QoS 0 fast path of this session
        self.lost_bytes = 0  # QoS 0 bytes a broken link took (§6.1), added as its session ends
        self._finalizing = False  # final messages going out: QoS 0 waits in the outbox
        self._in_flight = 0
        self._rate = PublishRate()
        self._nodelay = True
        self._latest: dict[str, OutMessage] = {}
        """Newest coalesced message per topic that ever had a QoS>0 one (one entry per
        topic: bounded)."""
        self._sending: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._restart = asyncio.Event()
        """Set by `reconnect`: ends the current session, `run()` connects again."""
        self.published = 0
        self.dropped = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.refused_subscriptions = self._subscriptions.refused
        """Filters the broker refused (an ACL that does not cover them), for health."""
        self.client = self.make_client()

    # ---- state ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the broker link is up."""
        return self._connected.is_set()

    @property
    def v5(self) -> bool:
        """True when talking MQTT 5 (response topics, retain-as-published)."""
        return self.settings.protocol == "5"

    @property
    def queue_depth(self) -> int:
        """Messages waiting in the outbox."""
        return len(self._outbox)

    @property
    def queue_bytes(self) -> int:
        """Bytes encoded for the broker and not yet on its socket: the QoS 0 writer's
        buffer and paho's packet queue (bounded: `QOS0_BYTES_LIMIT` plus what
        `QOS0_QUEUE_LIMIT` and `PUBLISH_WINDOW` let paho hold). 0 while disconnected."""
        client, writer = self._client, self._writer
        if client is None or writer is None:
            return 0
        return writer.buffered_bytes + paho_queue_bytes(client)

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until the broker link is up. Raises TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    def _start_send(self, client: aiomqtt.Client, key: object, seq: int, msg: OutMessage) -> None:
        # The task's first step hands the message to paho (aiomqtt's `publish` calls paho
        # before its first await); the barrier keeps QoS 0 order around it (§6.1).
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._send(client, key, seq, msg))
        if self._writer is not None:
            self._writer.barrier()
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, client: aiomqtt.Client, key: object, seq: int, msg: OutMessage) -> None:
        try:
            await client.publish(
                msg.topic,
                msg.payload,
                msg.qos,
                msg.retain,
                msg.properties,
                timeout=PUBLISH_TIMEOUT_S,
            )
            self.published += 1
        except aiomqtt.MqttError:
            # Back into the outbox (it goes out after the next reconnect), unless a newer
            # message for the same topic exists: waiting, or already sent meanwhile.
            newest = self._latest.get(key) if isinstance(key, str) else msg
            if newest is msg and key not in self._outbox:
                self._outbox.requeue(key, seq, msg)
        finally:
            self._in_flight -= 1
            if self._outbox:
                self._wakeup.set()

    async def subscribe(
        self, filters: Iterable[str], qos: int = 1, *, resend_retained: bool = False
    ) -> None:
        """Add subscriptions (kept across reconnects; applied now if connected).

        MQTT 5: `resend_retained` has the broker send retained messages at every
        subscribe, resumed sessions included (Retain Handling 0; command filters, so that
        a stale retained command is reported after every restart); otherwise only for a
        subscription that is new to the session (Retain Handling 1).
        """
        new = self._subscriptions.add(filters, qos, resend_retained=resend_retained)
        if new and self.connected and self._client is not None:
            try:
                await self._subscriptions.apply(self._client, new, v5=self.v5)
            except aiomqtt.MqttError as exc:  # re-applied on the next connect
                log.warning("subscribe failed", filters=new, error=describe_exception(exc))

    async def unsubscribe(self, filters: Iterable[str]) -> None:
        """Drop subscriptions."""
        gone = self._subscriptions.remove(filters)
        if gone and self.connected and self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.unsubscribe(gone)

    async def fetch_retained(
        self, filters: Iterable[str], quiet_s: float = 0.3, limit_s: float = 3.0
    ) -> dict[str, bytes]:
        """Retained messages under `filters` (topic → payload), read on a short-lived second
        connection so the main session's subscriptions stay untouched.

        A broker sends retained messages in one burst after the SUBACK; reading stops once
        nothing arrived for `quiet_s` seconds, or after `limit_s` in all. The helper's
        incoming queue has no bound (`make_client`), so a burst of any size is read whole.
        Raises aiomqtt.MqttError.
        """
        wanted = list(filters)
        identifier = f"{self.settings.client_id}-r-{next(self._counter)}"
        async with self.make_client(identifier, persistent=False) as client:
            found = await read_retained(client, wanted, quiet_s, limit_s)
        return found

    # ---- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve and reconnect with capped exponential backoff until cancelled."""
        backoff = 0.5
        while not self._stopping:
            if self._will is not None:
                # A Will that changes per session (Sparkplug's bdSeq) needs a new CONNECT
                # packet, so a new client, for every attempt.
                self.client = self.make_client()
            try:
                async with self.client as client:
                    self._client = client
                    backoff = 0.5
                    await self._serve(client)
            except* aiomqtt.MqttError as group:
                # Raised bare by connect, or grouped by the serve TaskGroup.
                exc = group.exceptions[0]
                self.last_error = describe_broker_error(exc, self.settings.username)
                # Not the bridge's fault, so never error level; but every attempt is a
                # warning: a broker that stays away must stay visible at the default level.
                (log.info if self._stopping else log.warning)(
                    "broker link down",
                    url=redact_url(self.settings.url),
                    error=self.last_error,
                    retry_in_s=None if self._stopping else backoff,
                )
            finally:
                writer, self._client, self._writer = self._writer, None, None
                self.lost_bytes += writer.lost_bytes + writer.buffered_bytes if writer else 0
                self._connected.clear()
                self._down.set()
            if self._stopping:
                return
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.reconnect_max_s)

    async def close(
        self, final: Iterable[OutMessage] = (), timeout_s: float = CLOSE_TIMEOUT_S
    ) -> None:
        """Publish `final` (e.g. `offline` states) if connected and stop reconnecting.

        Returns once they are acknowledged, the link goes down, or after `timeout_s`,
        whichever comes first: a broker that is going away with us would otherwise hold
        the shutdown for the client's whole publish timeout. The owner then cancels
        `run()`, whose `async with` sends a clean DISCONNECT; a clean disconnect
        suppresses the Will, which is why `final` carries the `offline` states.
        """
        self._stopping = True
        await self._publish_final(final, timeout_s)

    async def reconnect(
        self, final: Iterable[OutMessage] = (), timeout_s: float = CLOSE_TIMEOUT_S
    ) -> None:
        """Publish `final` like `close`, then end the current session (clean DISCONNECT)
        so that `run()` connects again with a new client (and a new Will). Nothing happens
        when the link is down (`run()` is reconnecting already)."""
        if self._client is None or not self.connected:
            return
        await self._publish_final(final, timeout_s)
        self._restart.set()

    def discard_queued(self) -> int:
        """Drop every message waiting in the outbox (not the ones handed to the client
        already) and return how many: for an owner whose queued messages mean nothing in
        a new session (Sparkplug's `seq`, `docs/sparkplug.md` §2)."""
        count = len(self._outbox)
        self._outbox.clear()
        return count

    async def _publish_final(self, final: Iterable[OutMessage], timeout_s: float) -> None:
        client = self._client
        if client is None or not self.connected:
            return
        # Finals go through paho past the publish window: paho may hold some back, and a
        # fast-path QoS 0 message would overtake them.
        self._finalizing = True
        publishes = [
            asyncio.ensure_future(client.publish(m.topic, m.payload, m.qos, m.retain, m.properties))
            for m in final
        ]
        if self._writer is not None:
            self._writer.barrier()
        down = asyncio.ensure_future(self._down.wait())
        try:
            if publishes:
                sent: asyncio.Future[Any] = asyncio.gather(*publishes, return_exceptions=True)
                await asyncio.wait({sent, down}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        finally:
            for task in (*publishes, down):
                task.cancel()
            # Let the cancelled publishes unwind (they hold no lock we need).
            await asyncio.wait([*publishes, down])
            self._finalizing = False

    async def _serve(self, client: aiomqtt.Client) -> None:
        prepare_session(client)
        self._nodelay = True
        if self._birth is not None:
            await client.publish(self.will_topic, self._birth, qos=1, retain=True)
        if self._subscriptions.filters:
            await self._subscriptions.apply(client, list(self._subscriptions.filters), v5=self.v5)
        self._writer = Qos0Writer(client, self.v5)
        self._connected.set()
        self._down.clear()
        self._restart.clear()
        log.info("broker connected", url=redact_url(self.settings.url))
        try:
            await self._on_connect()
        except Exception:
            log.exception("republishing after connect failed")
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publisher(client))
            tg.create_task(self._restart_requested())
            async for first in client.messages:
                message: aiomqtt.Message | None = first
                while message is not None:
                    try:
                        await self._on_message(message)
                    except Exception:
                        log.exception("message handler failed", topic=str(message.topic))
                    # Drain what is queued already (InboundStats.take_nowait says why).
                    message = self.inbound.take_nowait()
                self.inbound.release_memory()

    async def _restart_requested(self) -> None:
        # `reconnect`: ends the serve TaskGroup like a lost link would.
        await self._restart.wait()
        self._restart.clear()
        raise aiomqtt.MqttError("reconnect requested")

    def make_client(
        self, identifier: str | None = None, *, persistent: bool = True
    ) -> aiomqtt.Client:
        """An aiomqtt client for this broker with the configured credentials and TLS.

        The default is the bridge's own client (Will on the bridge state topic, persistent
        session); `persistent=False` with another `identifier` gives a throwaway helper
        connection without Will or session.
        """
        default = OutMessage(self.will_topic, b"offline", 1, True)
        return session_client(
            self.settings,
            self._will() if self._will is not None else default,
            self.inbound,
            self._inbound_limits,
            identifier=identifier or self.client_id,
            persistent=persistent,
            timeout_s=PUBLISH_TIMEOUT_S,
        )
