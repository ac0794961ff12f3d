"""`conduyt-bridge demo`: see the bridge work in one command, with no broker to install.

Starts an MQTT broker in-process (amqtt, from the optional `demo` extra; MQTT 3.1.1 only),
or, without amqtt, a local `mosquitto` binary on a free port; then a Bridge with two
simulated boards (`sim://thermostat`, `sim://kitchen`) and the HTTP status page; and
prints every message under `conduyt/#` as `topic  payload` lines until Ctrl-C or
`--seconds`.

amqtt notes (checked with amqtt 0.12): it refuses MQTT 5, so the bridge talks 3.1.1 to
it; the bridge's persistent session (`clean_session=False`) is accepted by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TextIO

import aiomqtt
from pydantic import ValidationError

from conduyt_bridge.app.config import (
    BridgeSection,
    DeviceConfig,
    HttpSection,
    MqttSection,
    Settings,
)
from conduyt_bridge.northbound.mqtt.inbound import payload_bytes

BASE_TOPIC = "conduyt"
"""Base topic of the demo bridge."""

MAX_PAYLOAD_CHARS = 160
"""Longer payloads (meta, inventory, health JSON) are shortened in the feed."""

BROKER_START_TIMEOUT_S = 10.0
"""How long a mosquitto started for the demo may take to accept connections, seconds."""

INSTALL_HINT = "pip install 'conduyt-bridge[demo]'"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    """A `mosquitto` binary: on PATH, or Debian's /usr/sbin (not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    candidate = Path("/usr/sbin/mosquitto")
    return str(candidate) if candidate.is_file() else None


class DemoBroker(Protocol):
    """An MQTT broker the demo starts and stops."""

    name: str
    protocol: str
    host: str
    port: int

    async def start(self) -> None:
        """Start accepting connections on `host:port`. Raises RuntimeError on failure."""
        ...

    async def stop(self) -> None:
        """Stop the broker."""
        ...


class AmqttBroker:
    """amqtt's broker in this process (MQTT 3.1.1, anonymous, no persistence)."""

    name = "amqtt (in-process)"
    protocol = "3.1.1"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    async def start(self) -> None:
        from amqtt.broker import Broker

        # Its default plugins log every packet and publish $SYS topics: only anonymous
        # auth is wanted here.
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        class _Broker(Broker):  # type: ignore[misc]  # amqtt is untyped
            async def _publish_retained_messages_for_subscription(
                self, subscription: tuple[str, int], session: Any
            ) -> None:
                # amqtt 0.12.1 calls this on every CONNECT with the filters of *all*
                # sessions, so a fresh client gets retained messages it never subscribed
                # to (the bridge's discovery sweep then took `conduyt/bridge/state` for a
                # stale config and cleared it). Only deliver to a session that holds the
                # subscription; a real SUBSCRIBE is recorded before this call.
                holders = self._subscriptions.get(subscription[0], [])
                if any(held is session for held, _ in holders):
                    await super()._publish_retained_messages_for_subscription(subscription, session)

        self._broker = _Broker(config)
        try:
            await self._broker.start()
        except Exception as exc:  # amqtt wraps bind errors in its own BrokerError
            raise RuntimeError(f"amqtt could not start on {self.host}:{self.port}: {exc}") from exc

    async def stop(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):
                await self._broker.shutdown()


class MosquittoBroker:
    """A local `mosquitto` binary on a free loopback port with a throw-away config."""

    name = "mosquitto"
    protocol = "5"

    def __init__(self, binary: str, host: str, port: int) -> None:
        self.binary = binary
        self.host = host
        self.port = port
        self._dir = tempfile.TemporaryDirectory(prefix="conduyt-demo-")
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        directory = Path(self._dir.name)
        config = directory / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n",
            encoding="utf-8",
        )
        log_path = directory / "mosquitto.log"
        with log_path.open("wb") as log_file:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary,
                "-c",
                str(config),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
            )
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                break
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        await self.stop()
        raise RuntimeError(f"mosquitto did not start: {' | '.join(tail) or 'no output'}")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._dir.cleanup()


def choose_broker(kind: str, host: str, port: int) -> DemoBroker | str:
    """The broker to start for `--broker kind` (auto, amqtt, mosquitto), or why none can be."""
    has_amqtt = importlib.util.find_spec("amqtt") is not None
    mosquitto = find_mosquitto()
    if kind in ("auto", "amqtt") and has_amqtt:
        return AmqttBroker(host, port)
    if kind in ("auto", "mosquitto") and mosquitto is not None:
        return MosquittoBroker(mosquitto, host, port)
    if kind == "mosquitto":
        return "no mosquitto binary found (looked on PATH and in /usr/sbin)"
    if kind == "amqtt":
        return f"amqtt, the in-process broker, is not installed: {INSTALL_HINT}"
    return (
        "the demo needs an MQTT broker: install the in-process one with\n"
        f"    {INSTALL_HINT}\n"
        "(or install mosquitto, which the demo uses when amqtt is missing)"
    )


def demo_settings(broker: DemoBroker, http_listen: str) -> Settings:
    """The bridge configuration of the demo: two simulated boards on `broker`."""
    return Settings(
        bridge=BridgeSection(base_topic=BASE_TOPIC, health_interval_s=10.0),
        mqtt=MqttSection(
            url=f"mqtt://{broker.host}:{broker.port}",
            client_id=f"conduyt-bridge-demo-{broker.port}",
            protocol="5" if broker.protocol == "5" else "3.1.1",
        ),
        devices=[
            DeviceConfig(id="thermostat", port="sim://thermostat"),
            DeviceConfig(id="kitchen", port="sim://kitchen"),
        ],
        http=HttpSection(listen=http_listen),
    )


def format_payload(payload: bytes) -> str:
    """A payload as one printable line: text as is (shortened), binary as a hex summary."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        if len(text) > MAX_PAYLOAD_CHARS:
            return text[: MAX_PAYLOAD_CHARS - 1] + "…"
        return text if text else "(empty)"
    preview = payload[:16].hex(" ")
    more = " …" if len(payload) > 16 else ""
    return f"<{len(payload)} bytes: {preview}{more}>"


class FeedOutput:
    """Where the feed's lines go; a closed pipe (`demo | head`) ends the demo quietly."""

    def __init__(self, out: TextIO, on_closed: Callable[[], None]) -> None:
        self.out = out
        self.closed = False
        self._on_closed = on_closed

    def line(self, text: str) -> None:
        """Print one line (flushed at once: the feed is live)."""
        if self.closed:
            return
        try:
            print(text, file=self.out, flush=True)
        except BrokenPipeError:
            self.closed = True
            # Python would hit the closed pipe again when it flushes stdout at exit.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.out.fileno())
            self._on_closed()


async def print_feed(
    broker: DemoBroker,
    topic_filter: str,
    out: FeedOutput,
    ready: asyncio.Event,
    hide: str | None = None,
) -> None:
    """Subscribe to `topic_filter` and print `topic  payload` lines until cancelled.

    Topics matching the filter `hide` are not printed.
    """
    version = aiomqtt.ProtocolVersion.V5 if broker.protocol == "5" else aiomqtt.ProtocolVersion.V311
    client = aiomqtt.Client(
        broker.host, broker.port, identifier=f"conduyt-demo-feed-{broker.port}", protocol=version
    )
    async with client:
        await client.subscribe(topic_filter, qos=1)
        ready.set()
        async for message in client.messages:
            if hide is not None and message.topic.matches(hide):
                continue
            data = payload_bytes(message)
            out.line(f"{message.topic.value}  {format_payload(data)}")


def _quiet_libraries() -> None:
    # amqtt and its state machine library log every connection at INFO/WARNING; the feed
    # is what the user wants to read.
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)


async def run_demo(
    seconds: float | None = None,
    broker_kind: str = "auto",
    mqtt_port: int | None = None,
    http_listen: str | None = "auto",
    raw: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo; returns the exit code.

    Args:
        seconds: stop after this many seconds; None = until SIGINT/SIGTERM.
        broker_kind: `auto` (amqtt, else mosquitto), `amqtt` or `mosquitto`.
        mqtt_port: loopback port of the broker; None = a free one.
        http_listen: `host:port` of the status page, `auto` (a free loopback port) or
            None (no status page).
        raw: also print the raw packets on `{dev}/evt/{type}` (each board event appears
            there too, which doubles the feed).
        out: where the feed goes.
    """
    from conduyt_bridge.app.daemon import Bridge

    _quiet_libraries()
    host = "127.0.0.1"
    broker = choose_broker(broker_kind, host, mqtt_port or free_port(host))
    if isinstance(broker, str):
        print(f"conduyt-bridge demo: {broker}", file=sys.stderr)
        return 1
    listen = f"{host}:{free_port(host)}" if http_listen == "auto" else (http_listen or "")
    try:
        settings = demo_settings(broker, listen)
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        print(f"conduyt-bridge demo: --http {listen!r}: {reasons}", file=sys.stderr)
        return 2
    try:
        await broker.start()
    except RuntimeError as exc:
        print(f"conduyt-bridge demo: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    feed_out = FeedOutput(out, stop.set)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(RuntimeError):  # no signal handlers on this platform
            loop.add_signal_handler(sig, stop.set)
    try:
        bridge = Bridge(settings)
        feed_out.line(
            f"# broker: {broker.name} on mqtt://{host}:{broker.port} (MQTT {broker.protocol})"
        )
        if listen:
            feed_out.line(f"# status page: http://{listen}/")
        feed_out.line(
            f"# boards: {', '.join(bridge.boards)} (simulated); "
            f"feed of {BASE_TOPIC}/# follows"
            + ("" if raw else " (raw evt/ packets hidden: --raw shows them)")
            + ("" if seconds is not None else "; Ctrl-C to stop")
        )
        ready = asyncio.Event()
        feed = asyncio.create_task(
            print_feed(
                broker,
                f"{BASE_TOPIC}/#",
                feed_out,
                ready,
                hide=None if raw else f"{BASE_TOPIC}/+/evt/#",
            )
        )
        # Subscribe before the bridge starts, so the feed shows the bridge coming online.
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({feed, waiter}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if feed.done():
            error = feed.exception() if not feed.cancelled() else None
            print(f"conduyt-bridge demo: cannot subscribe: {error}", file=sys.stderr)
            return 1
        runner = asyncio.create_task(bridge.run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        bridge.stop()
        await runner
        # Let the subscriber print the boards' and the bridge's final `offline`.
        await asyncio.sleep(0.3)
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await feed
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(RuntimeError):  # no signal handlers on this platform
                loop.remove_signal_handler(sig)
        await broker.stop()
    feed_out.line("# demo stopped")
    return 0
