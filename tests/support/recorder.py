"""A recording MQTT v5 subscriber for the tests.

* :class:`Recorder` - subscribes to some topic filters, records everything it receives
  and lets a test wait for a message (before or after a point in the recording), with
  an optional persistent session that survives a broker restart.
* :class:`Received` - one recorded message (payload as text/JSON, MQTT v5 properties).
"""

# The waiting methods take `timeout=` arguments on purpose (the suite-wide API), so the
# "use asyncio.timeout instead" rule does not fit here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiomqtt
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .mqtt_client import new_client
from .net import BrokerLike

__all__ = ["PayloadPredicate", "Received", "Recorder"]

PayloadPredicate = Callable[[bytes], bool]
"""A test on a message payload, used by :meth:`Recorder.wait_for`."""


@dataclass(frozen=True)
class Received:
    """One message as a :class:`Recorder` received it."""

    topic: str
    payload: bytes
    retain: bool
    qos: int
    properties: Properties | None = field(default=None, compare=False)
    received_at: float = field(default=0.0, compare=False)
    """``time.monotonic()`` when the recorder got it."""

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)

    @property
    def correlation_data(self) -> bytes | None:
        """The MQTT v5 Correlation Data property, if any."""
        value = getattr(self.properties, "CorrelationData", None)
        return bytes(value) if value is not None else None

    @property
    def user_properties(self) -> list[tuple[str, str]]:
        """The MQTT v5 User Properties, if any."""
        value = getattr(self.properties, "UserProperty", None)
        return list(value) if value else []


def _is_filter(topic: str) -> bool:
    return "+" in topic or "#" in topic


def _topic_matches(topic_or_filter: str, topic: str) -> bool:
    if _is_filter(topic_or_filter):
        return aiomqtt.Topic(topic).matches(topic_or_filter)
    return topic == topic_or_filter


def _as_bytes(payload: bytes | str) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else payload


class Recorder:
    """Records every message received on some topic filters (an MQTT v5 subscriber).

    Usage::

        async with Recorder(broker, f"{base_topic}/#") as rec:
            await publish(broker, f"{base_topic}/x", "1")
            msg = await rec.wait_for(f"{base_topic}/x")

    Subscriptions are made with QoS 2 (so :attr:`Received.qos` is the QoS the message
    was published with) and *Retain As Published* (so :attr:`Received.retain` tells
    whether the publisher set the retain flag; retained messages delivered on subscribe
    have it too). The subscriptions are acknowledged before ``__aenter__`` returns.

    One reader task consumes ``client.messages`` (aiomqtt has one shared queue per
    client). With ``reconnect=True`` the recorder uses a persistent session and comes
    back by itself after a broker restart; messages queued by the broker meanwhile are
    recorded. Without it, a lost connection makes waiting methods raise
    :class:`aiomqtt.MqttError` (after messages recorded before it were considered).

    ``username``/``password`` authenticate against brokers that refuse anonymous
    clients (the test broker accepts them).
    """

    def __init__(
        self,
        target: BrokerLike | str,
        *topic_filters: str,
        qos: int = 2,
        retain_as_published: bool = True,
        reconnect: bool = False,
        identifier: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if not topic_filters:
            msg = "Recorder needs at least one topic filter"
            raise ValueError(msg)
        self.target = target
        self.topic_filters: tuple[str, ...] = topic_filters
        self.qos = qos
        self.retain_as_published = retain_as_published
        self.reconnect = reconnect
        self.identifier = identifier or f"recorder-{uuid.uuid4().hex[:12]}"
        self.username = username
        self.password = password
        self._records: list[tuple[int, Received]] = []
        self._seq = 0
        self._changed = asyncio.Condition()
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.connections = 0
        """How many times the recorder has connected (> 1 after a reconnect)."""

    # -- connection ---------------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        return new_client(
            self.target,
            identifier=self.identifier,
            persistent=self.reconnect,
            username=self.username,
            password=self.password,
        )

    async def _connect(self, retain_handling: int) -> aiomqtt.Client:
        client = self._new_client()
        await client.__aenter__()
        try:
            options = SubscribeOptions(
                qos=self.qos,
                retainAsPublished=self.retain_as_published,
                retainHandling=retain_handling,
            )
            await client.subscribe([(f, options) for f in self.topic_filters])
        except BaseException:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            raise
        self.connections += 1
        return client

    async def __aenter__(self) -> Self:
        self._client = await self._connect(retain_handling=0)
        self._reader = asyncio.create_task(self._read(), name=f"Recorder({self.identifier})")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _read(self) -> None:
        backoff = 0.05
        while True:
            client = self._client
            assert client is not None
            try:
                async for message in client.messages:
                    await self._record(message)
            except aiomqtt.MqttError as exc:
                with contextlib.suppress(Exception):
                    await client.__aexit__(None, None, None)
                self._client = None
                if not self.reconnect:
                    await self._fail(exc)
                    return
            # Reconnect with capped backoff. retainHandling=1: retained messages are sent
            # again only when the subscription did not survive (session lost), so a
            # resumed session does not record them twice.
            while self._client is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                with contextlib.suppress(aiomqtt.MqttError):
                    self._client = await self._connect(retain_handling=1)
            backoff = 0.05

    async def _record(self, message: aiomqtt.Message) -> None:
        received = Received(
            topic=message.topic.value,
            payload=bytes(message.payload),
            retain=bool(message.retain),
            qos=int(message.qos),
            properties=message.properties,
            received_at=time.monotonic(),
        )
        async with self._changed:
            self._seq += 1
            self._records.append((self._seq, received))
            self._changed.notify_all()

    async def _fail(self, exc: BaseException) -> None:
        async with self._changed:
            self._error = exc
            self._changed.notify_all()

    # -- queries ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the recorder has a live connection."""
        return self._client is not None and self._error is None

    def messages(self, topic: str | None = None) -> list[Received]:
        """Messages recorded so far, oldest first: all, or those on *topic*.

        *topic* is an exact topic, or a filter when it contains ``+`` or ``#``.
        """
        return [r for _, r in self._records if topic is None or _topic_matches(topic, r.topic)]

    def topics(self) -> list[str]:
        """Distinct topics recorded so far, in order of first arrival."""
        return list(dict.fromkeys(r.topic for _, r in self._records))

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._records.clear()

    def _find(
        self,
        topic: str,
        after: int,
        predicate: PayloadPredicate | None,
        payload: bytes | None,
    ) -> Received | None:
        for seq, rec in self._records:
            if seq <= after or not _topic_matches(topic, rec.topic):
                continue
            if payload is not None and rec.payload != payload:
                continue
            if predicate is not None and not predicate(rec.payload):
                continue
            return rec
        return None

    async def _wait(
        self,
        topic: str,
        after: int,
        predicate: PayloadPredicate | None,
        payload: bytes | str | None,
        timeout: float,
    ) -> Received:
        want = _as_bytes(payload) if payload is not None else None
        found: Received | None = None

        def ready() -> bool:
            nonlocal found
            found = self._find(topic, after, predicate, want)
            return found is not None or self._error is not None

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout)
            except TimeoutError:
                seen = ", ".join(self.topics()[-20:]) or "nothing"
                msg = (
                    f"no message on {topic!r} matching within {timeout}s; "
                    f"recorded topics (last 20): {seen}"
                )
                raise TimeoutError(msg) from None
        if found is not None:
            return found
        msg = f"recorder lost its connection while waiting for {topic!r}"
        raise aiomqtt.MqttError(msg) from self._error

    async def wait_for(
        self,
        topic: str,
        predicate: PayloadPredicate | None = None,
        timeout: float = 5.0,
        *,
        payload: bytes | str | None = None,
    ) -> Received:
        """The first message on *topic* whose payload matches, recorded before or after.

        *topic* is an exact topic (or a filter if it contains ``+``/``#``); *predicate*
        is called with the payload bytes; *payload* (bytes or text) demands an exact
        payload. Raises TimeoutError (listing the topics seen) after *timeout* seconds.
        """
        return await self._wait(topic, 0, predicate, payload, timeout)

    async def wait_for_new(
        self,
        topic: str,
        predicate: PayloadPredicate | None = None,
        timeout: float = 5.0,
        *,
        payload: bytes | str | None = None,
    ) -> Received:
        """Like :meth:`wait_for`, but only messages recorded after this call."""
        return await self._wait(topic, self._seq, predicate, payload, timeout)

    def mark(self) -> int:
        """A position in the recording, for :meth:`wait_for_after` / :meth:`since`."""
        return self._seq

    def since(self, mark: int, topic: str | None = None) -> list[Received]:
        """Messages recorded after *mark* (from :meth:`mark`), optionally on *topic*."""
        return [
            r
            for seq, r in self._records
            if seq > mark and (topic is None or _topic_matches(topic, r.topic))
        ]

    async def wait_for_after(
        self,
        mark: int,
        topic: str,
        predicate: PayloadPredicate | None = None,
        timeout: float = 5.0,
        *,
        payload: bytes | str | None = None,
    ) -> Received:
        """Like :meth:`wait_for_new`, counting from an earlier :meth:`mark`.

        Take the mark *before* triggering the action, then wait: nothing is missed even
        if the answer arrives before the wait starts.
        """
        return await self._wait(topic, mark, predicate, payload, timeout)

    async def assert_nothing(self, topic: str, duration: float = 0.3) -> None:
        """Wait *duration* seconds and fail (AssertionError) if anything new hit *topic*."""
        start = self._seq
        await asyncio.sleep(duration)
        got = self.since(start, topic)
        assert not got, f"unexpected message(s) on {topic!r}: {got}"
