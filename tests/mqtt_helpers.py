"""MQTT test helpers shared by the test suite.

Import from test modules as ``from mqtt_helpers import Recorder, publish, ...`` (the
``tests`` directory is on ``sys.path``: see ``tests/conftest.py``).

Contents:

* :class:`Broker` - what the ``broker`` fixture returns: host, port, url, and control over
  a broker process the fixture started itself (``stop``/``start``/``restart``).
* :class:`MosquittoProcess` - a throw-away ``mosquitto`` on a free loopback port.
* :class:`Recorder` - an MQTT v5 subscriber that records everything it receives and lets
  a test wait for a message.
* :func:`publish` - one-shot publish.
* :func:`retained_snapshot` - the retained messages currently under a topic filter.
"""

# The waiting helpers take `timeout=` arguments on purpose (the suite-wide API), so the
# "use asyncio.timeout instead" rule does not fit here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = [
    "Broker",
    "BrokerLike",
    "MosquittoProcess",
    "Received",
    "Recorder",
    "find_mosquitto",
    "free_port",
    "parse_mqtt_url",
    "port_accepts",
    "publish",
    "publish_properties",
    "retained_snapshot",
    "wait_port",
]

PayloadPredicate = Callable[[bytes], bool]
"""A test on a message payload, used by :meth:`Recorder.wait_for`."""

# ---------------------------------------------------------------------------------------
# Broker address and control
# ---------------------------------------------------------------------------------------


class BrokerLike(Protocol):
    """Anything with a ``host`` and a ``port`` (a :class:`Broker`, for instance)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Return ``(host, port)`` of an ``mqtt://`` / ``tcp://`` URL (port defaults to 1883).

    ``mqtts://`` / ``ssl://`` default to port 8883. A bare ``host[:port]`` is accepted too.
    """
    if "://" not in url:
        url = f"mqtt://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        msg = f"unsupported MQTT URL scheme {parts.scheme!r} in {url!r}"
        raise ValueError(msg)
    default_port = 8883 if parts.scheme in ("mqtts", "ssl") else 1883
    host = parts.hostname or "localhost"
    return host, parts.port or default_port


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on *host* that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return True when a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(
    host: str,
    port: int,
    timeout: float = 10.0,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll until ``host:port`` accepts a TCP connection; False after *timeout* seconds.

    *alive*, when given, is checked between attempts: once it returns False (the server
    process died) waiting stops early and False is returned.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(host, port):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.02)
    return False


def find_mosquitto() -> str | None:
    """Path of a ``mosquitto`` binary: ``$PATH`` first, then Debian's ``/usr/sbin``."""
    found = shutil.which("mosquitto")
    if found:
        return found
    candidate = Path("/usr/sbin/mosquitto")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


class MosquittoProcess:
    """A private ``mosquitto`` on a free loopback port, configured for tests.

    The configuration, the persistence database and the broker log live in one temporary
    directory. :meth:`stop` and :meth:`start` keep the same configuration and port, and
    ``persistence true`` makes sessions (subscriptions and queued QoS>0 messages of
    offline persistent clients) and retained messages survive a restart.
    """

    STOP_TIMEOUT = 5.0
    START_TIMEOUT = 10.0

    def __init__(self, binary: str, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.binary = binary
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="conduyt-mosquitto-"))
        self.data_dir = self.tmpdir / "data"
        self.data_dir.mkdir()
        self.config_path = self.tmpdir / "mosquitto.conf"
        self.log_path = self.tmpdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self.write_config()
        atexit.register(self.close)

    @staticmethod
    def _run_as() -> tuple[str, int, int] | None:
        """``(user, uid, gid)`` the broker will run as when we are root, else None."""
        # Run as root, mosquitto drops privileges to its `user` (default "mosquitto")
        # right after reading the configuration, and then writes the persistence
        # database as that user. We keep the broker unprivileged, like the Debian
        # service does, and hand it our temp dir (see _hand_over: mkdtemp makes it 0700
        # root, so without a chown it could neither traverse it nor write data/). Where
        # no "mosquitto" account exists we say `user root` explicitly: otherwise it would
        # fall back to "nobody", which cannot write here either. Run as a normal user,
        # `user` has no effect and everything belongs to that user already.
        if os.geteuid() != 0:
            return None
        try:
            account = pwd.getpwnam("mosquitto")
        except KeyError:
            return ("root", 0, 0)
        return ("mosquitto", account.pw_uid, account.pw_gid)

    def _hand_over(self) -> None:
        """Give the temp dir (config, data, any files a test put there) to the broker user."""
        run_as = self._run_as()
        if run_as is None or run_as[1] == 0:
            return
        _, uid, gid = run_as
        for root, dirs, files in os.walk(self.tmpdir):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), uid, gid)
        os.chown(self.tmpdir, uid, gid)

    def write_config(self, body: str | None = None) -> None:
        """(Re)write the configuration; takes effect at the next :meth:`start`.

        *body* replaces the default test settings (listener, anonymous access,
        persistence, limits); it must contain a ``listener`` for :attr:`port` on
        :attr:`host`. The ``user`` line and the logging lines are always added.
        """
        run_as = self._run_as()
        head = [
            "# Generated by tests/mqtt_helpers.py for the test suite.",
            f"user {run_as[0]}" if run_as else "",
        ]
        logging_lines = [
            # Log to stderr, which we redirect to a file we opened ourselves (mosquitto
            # may no longer be allowed to open files after dropping privileges).
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
            "",
        ]
        if body is not None:
            lines = [*head, body, *logging_lines]
            self.config_path.write_text("\n".join(lines), encoding="utf-8")
            return
        lines = [
            *head,
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # Sessions and retained messages survive restart()/stop()+start().
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "persistence_file mosquitto.db",
            # The database is written on a clean exit (SIGTERM) anyway; a short autosave
            # interval also keeps most of it if a broker ever has to be SIGKILLed.
            "autosave_interval 5",
            # Tests queue bursts of QoS 1 commands for an offline persistent session (the
            # bridge "away"); with the default 1000 a larger burst would be dropped
            # silently and show up as a flaky "lost message". 10000 still bounds memory.
            # 0 (unlimited) would hide a runaway publisher, so not that.
            "max_queued_messages 10000",
            # max_inflight_messages stays at its default (20): unlimited in-flight would
            # mask flow-control problems that a production broker would show, and 20 is
            # plenty for loopback throughput.
            # Small messages are the norm here: do not let Nagle add latency to them.
            "set_tcp_nodelay true",
            *logging_lines,
        ]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")

    @property
    def url(self) -> str:
        """``mqtt://host:port`` of this broker."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker, or None."""
        with self._lock:
            return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        with self._lock:
            return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last *lines* lines of the broker log (for error messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        """Start the broker (no-op when running) and wait until its port accepts.

        Raises RuntimeError with the tail of the broker log when it does not come up
        within :attr:`START_TIMEOUT` seconds.
        """
        with self._lock:
            if self.is_running():
                return
            if port_accepts(self.host, self.port):
                msg = f"port {self.host}:{self.port} is taken by another process"
                raise RuntimeError(msg)
            self._hand_over()
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [self.binary, "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C in the terminal reaches pytest, which then
                    # stops the broker cleanly through the fixture finaliser.
                    start_new_session=True,
                )
            proc = self._proc
            if not wait_port(
                self.host, self.port, self.START_TIMEOUT, alive=lambda: proc.poll() is None
            ):
                code = proc.poll()
                self._terminate()
                msg = (
                    f"mosquitto did not accept connections on {self.host}:{self.port} "
                    f"within {self.START_TIMEOUT}s (exit code {code}); log tail:\n"
                    f"{self.log_tail()}"
                )
                raise RuntimeError(msg)

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.STOP_TIMEOUT)
        self._proc = None

    def stop(self) -> None:
        """Stop the broker by PID: SIGTERM (it saves its database), SIGKILL after 5 s."""
        with self._lock:
            self._terminate()
        # The listening socket is closed once the process is gone; make sure of it so
        # that "stopped" really means "connections are refused".
        deadline = time.monotonic() + self.STOP_TIMEOUT
        while port_accepts(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start again with the same configuration and port."""
        with self._lock:
            self.stop()
            self.start()

    def close(self) -> None:
        """Stop the broker and remove its temporary directory."""
        with self._lock:
            self._terminate()
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        atexit.unregister(self.close)


@dataclass
class Broker:
    """The MQTT broker the tests run against (what the ``broker`` fixture returns).

    ``restart`` is None when the fixture cannot control the broker (``MQTT_URL`` or a
    container); :meth:`stop`, :meth:`start` and :meth:`restart` then skip the calling
    test. Use the ``restartable_broker`` fixture to skip up front.

    The ``stop``/``start``/``restart`` methods block for up to a few seconds; from a
    coroutine whose event loop also runs the code under test, prefer the ``a*``
    variants, which run them in a thread and keep the loop (and the bridge) running.
    """

    host: str
    port: int
    url: str
    restart: Callable[[], None] | None = None
    kind: str = "external"
    """``"mosquitto"`` (a process we started), ``"container"`` or ``"external"``."""
    process: MosquittoProcess | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str, kind: str = "external") -> Broker:
        """A broker we only know the address of (not restartable)."""
        host, port = parse_mqtt_url(url)
        return cls(host=host, port=port, url=url, kind=kind)

    @classmethod
    def from_process(cls, process: MosquittoProcess) -> Broker:
        """A broker backed by a :class:`MosquittoProcess` (restartable)."""
        return cls(
            host=process.host,
            port=process.port,
            url=process.url,
            restart=process.restart,
            kind="mosquitto",
            process=process,
        )

    @property
    def can_restart(self) -> bool:
        """True when stop/start/restart are supported."""
        return self.process is not None

    def _require_process(self) -> MosquittoProcess:
        if self.process is None:
            pytest.skip(f"broker restart not supported for a {self.kind} broker ({self.url})")
        return self.process

    def stop(self) -> None:
        """Stop the broker (connections are refused until :meth:`start`)."""
        self._require_process().stop()

    def start(self) -> None:
        """Start the broker again on the same port; returns once it accepts."""
        self._require_process().start()

    def is_running(self) -> bool:
        """True when the broker accepts connections (always assumed for others)."""
        if self.process is None:
            return True
        return self.process.is_running()

    def ensure_running(self) -> None:
        """Start the broker if a test left it stopped (no-op when not controllable)."""
        if self.process is not None and not self.process.is_running():
            self.process.start()

    async def astop(self) -> None:
        """:meth:`stop` without blocking the event loop."""
        process = self._require_process()
        await asyncio.to_thread(process.stop)

    async def astart(self) -> None:
        """:meth:`start` without blocking the event loop."""
        process = self._require_process()
        await asyncio.to_thread(process.start)

    async def arestart(self) -> None:
        """``restart()`` without blocking the event loop."""
        process = self._require_process()
        await asyncio.to_thread(process.restart)


def _address(target: BrokerLike | str) -> tuple[str, int]:
    if isinstance(target, str):
        return parse_mqtt_url(target)
    return target.host, target.port


def _client(
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
    host, port = _address(target)
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


# ---------------------------------------------------------------------------------------
# Recording subscriber
# ---------------------------------------------------------------------------------------


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
        return _client(
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


# ---------------------------------------------------------------------------------------
# One-shot helpers
# ---------------------------------------------------------------------------------------


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
    async with _client(
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
    async with _client(broker, username=username, password=password) as client:
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
