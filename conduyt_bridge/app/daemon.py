"""The Bridge: wiring of one MQTT connection and one supervised session per board.

Nothing here speaks the protocol or MQTT itself; it builds the parts from the settings,
routes command messages to their board, republishes retained state after every broker
(re)connect, and shuts down cleanly (`docs/architecture.md` §3, §6, §7).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiomqtt
import structlog

from conduyt_bridge.app.config import DeviceConfig, Settings
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.transports import (
    ListenTransport,
    SerialTransport,
    SimTransport,
    TcpListener,
    Transport,
)
from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.conduyt.board import BoardBridge, Command
from conduyt_bridge.northbound.conduyt.payloads import dumps
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, parse_command_topic
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage
from conduyt_bridge.version import __version__

log = structlog.stdlib.get_logger("conduyt_bridge.app.daemon")

Plugin = Callable[["Bridge"], None]
"""Something that extends a Bridge once its boards exist (command kinds, discovery...)."""


def make_transport(
    device: DeviceConfig, listeners: dict[tuple[str, int], TcpListener]
) -> Transport:
    """The transport for a device's `port` (`docs/architecture.md` §1)."""
    kind = device.port_kind
    if kind == "sim":
        assert device.sim_profile is not None
        return SimTransport(device.sim_profile, device_id=device.device_id)
    if kind == "listen":
        assert device.net_address is not None
        listener = listeners.get(device.net_address)
        if listener is None:
            listener = TcpListener(
                *device.net_address, hello_timeout_s=device.hello_timeout_ms / 1000 * 2
            )
            listeners[device.net_address] = listener
        return ListenTransport(listener, device.mcu_id)
    return SerialTransport(device.port, device.baudrate)


STARTUP_BROKER_WAIT_S = 5.0
"""How long the boards wait for the broker at start-up (to read retained state first);
past it they start anyway and their state waits in the outbox."""

SHUTDOWN_HOOK_S = 2.0
"""Longest a plugin's shutdown hook may take."""

RESTART_DELAY_S = 1.0
"""Pause before a crashed job is started again."""


async def supervise(
    name: str,
    job: Callable[[], Coroutine[Any, Any, None]],
    stopping: asyncio.Event | None = None,
) -> None:
    """Run `job` forever: if it ever returns or raises (a bug, not a lost link: those are
    handled inside), log it and start it again, so one failure never stops the bridge.

    Once `stopping` is set a job may end (the MQTT link returns when `close` was called
    and the broker is gone too): then it is over, neither an error nor restarted."""
    while True:
        try:
            await job()
            if stopping is not None and stopping.is_set():
                return
            log.error("job ended unexpectedly; restarting it", job=name)
        except Exception:
            if stopping is not None and stopping.is_set():
                log.warning("job failed while stopping", job=name, exc_info=True)
                return
            log.exception("job crashed; restarting it", job=name)
        await asyncio.sleep(RESTART_DELAY_S)


class Bridge:
    """The running daemon: boards, their sessions, and the MQTT connection."""

    def __init__(self, settings: Settings, plugins: list[Plugin] | None = None) -> None:
        self.settings = settings
        self.topics = BridgeTopics(settings.bridge.base_topic)
        self.started_at = time.time()
        self.mqtt = MqttConnection(
            settings.mqtt, self.topics.state, self._on_message, self._on_connect
        )
        self.listeners: dict[tuple[str, int], TcpListener] = {}
        self.boards: dict[str, BoardBridge] = {}
        self.sessions: dict[str, DeviceSession] = {}
        self.connect_hooks: list[Callable[[], Awaitable[None]]] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        self.message_hooks: dict[str, Callable[[aiomqtt.Message], Awaitable[None]]] = {}
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._stopped = asyncio.Event()
        for device in settings.devices:
            self._add_board(device)
        from conduyt_bridge.app.plugins import default_plugins

        for plugin in default_plugins() if plugins is None else plugins:
            plugin(self)

    def _add_board(self, device: DeviceConfig) -> None:
        board = BoardBridge(
            device,
            self.topics.device(device.device_id),
            self.mqtt,
            payload_format=self.settings.mqtt.payload_format,
        )
        transport = make_transport(device, self.listeners)
        session = DeviceSession(
            device,
            transport,
            board,
            # Pin subscriptions are applied before this by the commands plugin
            # (`conduyt_bridge.northbound.conduyt.handlers`), which inserts its own hook
            # first (`docs/architecture.md` §4 order).
            handshake_hooks=[board.replay_retained],
        )
        board.session = session
        board.change_hooks.append(self._inventory_changed)
        board.offline_hooks.append(self._board_offline)
        self.boards[board.dev] = board
        self.sessions[board.dev] = session

    # ---- MQTT side ------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        filters: list[str] = []
        for board in self.boards.values():
            filters += board.topics.command_filters()
        await self.mqtt.subscribe(filters, resend_retained=True)
        for board in self.boards.values():
            board.publish_state()
        self.publish_inventory()
        self.mqtt.publish(self.topics.health, dumps(self.health()), qos=0)
        for hook in self.connect_hooks:
            await hook()

    async def _seed_replay(self) -> None:
        """Read the boards' retained datastream states once, before their sessions start,
        so writable retained values survive a bridge restart as well as a board reboot
        (`docs/architecture.md` §4): the broker is the bridge's only store. Read before any board
        pushes, so what is found is what was published before the restart."""
        filters = [f"{board.topics.prefix}/ds/+" for board in self.boards.values()]
        if not filters or not self.mqtt.connected:
            return
        try:
            found = await self.mqtt.fetch_retained(filters)
        except aiomqtt.MqttError as exc:
            log.info("could not read retained datastream states", error=describe_exception(exc))
            return
        for topic, payload in found.items():
            parsed = topic[len(self.topics.base) + 1 :].split("/")
            board = self.boards.get(parsed[0])
            if board is not None and len(parsed) == 3 and parsed[1] == "ds":
                board.retained_seed[parsed[2]] = payload

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        hook = self.message_hooks.get(topic)
        if hook is not None:
            await hook(message)
            return
        parsed = parse_command_topic(self.topics.base, topic)
        if parsed is None:
            log.debug("message on an unknown topic", topic=topic)
            return
        board = self.boards.get(parsed.dev)
        if board is None:
            log.debug("command for an unknown board", topic=topic)
            return
        payload = message.payload
        data = payload if isinstance(payload, bytes) else str(payload or "").encode()
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        board.submit(
            Command(
                topic=topic,
                parsed=parsed,
                payload=data,
                retain=bool(message.retain),
                response_topic=response_topic or None,
                correlation_data=correlation,
            )
        )

    def publish_inventory(self) -> None:
        """Publish the retained `{base}/bridge/devices` inventory."""
        inventory = [board.inventory_entry() for board in self.boards.values()]
        self.mqtt.publish(self.topics.devices, dumps(inventory), qos=1, retain=True)

    async def _inventory_changed(self, board: BoardBridge, *_: Any) -> None:
        self.publish_inventory()

    async def _board_offline(self, board: BoardBridge) -> None:
        self.publish_inventory()

    def health(self) -> dict[str, Any]:
        """The health document of `{base}/bridge/health` and the HTTP endpoint."""
        boards: dict[str, Any] = {}
        for dev, session in self.sessions.items():
            s = session.stats
            p50 = s.latency_percentile(0.5)
            p99 = s.latency_percentile(0.99)
            boards[dev] = {
                "state": str(session.state),
                "packets_in": s.packets_in,
                "packets_out": s.packets_out,
                "frame_errors": s.frame_errors,
                "text_lines": s.text_lines,
                "log_lines_dropped": self.boards[dev].text_limiter.dropped,
                "reboots_suspected": s.reboots_suspected,
                "crc_naks": s.crc_naks,
                "naks": s.naks,
                "timeouts": s.timeouts,
                "reconnects": s.reconnects,
                "latency_ms_p50": round(p50 * 1000, 2) if p50 is not None else None,
                "latency_ms_p99": round(p99 * 1000, 2) if p99 is not None else None,
                "last_error": session.last_error,
            }
        return {
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "broker": {
                "connected": self.mqtt.connected,
                "reconnects": self.mqtt.reconnects,
                "queue_depth": self.mqtt.queue_depth,
                "dropped": self.mqtt.dropped,
                "inbound_dropped": self.mqtt.inbound.dropped,
                "last_error": self.mqtt.last_error,
                "refused_subscriptions": sorted(self.mqtt.refused_subscriptions),
            },
            "boards": boards,
        }

    async def _health_loop(self) -> None:
        while True:
            self.mqtt.publish(self.topics.health, dumps(self.health()), qos=0)
            await asyncio.sleep(self.settings.bridge.health_interval_s)

    # ---- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` is called (or the task is cancelled), then shut down cleanly."""
        log.info("conduyt-bridge starting", version=__version__, boards=list(self.boards))
        for board in self.boards.values():
            board.publish_state()  # `offline` until the first handshake
        try:
            async with asyncio.TaskGroup() as tg:
                for (host, port), listener in self.listeners.items():
                    try:
                        await listener.start()
                    except OSError as exc:  # its boards retry the bind; the rest runs
                        log.error(
                            "cannot listen for TCP boards",
                            host=host,
                            port=port,
                            error=describe_exception(exc),
                        )
                jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
                    ("mqtt", self.mqtt.run),
                    ("health", self._health_loop),
                ]
                tasks = [
                    tg.create_task(supervise(name, job, self._stopped), name=name)
                    for name, job in jobs
                ]
                jobs = []
                await self._first_connect()
                if not self._stopped.is_set():
                    await self._seed_replay()
                for dev, session in self.sessions.items():
                    jobs.append((f"session-{dev}", session.run))
                    jobs.append((f"commands-{dev}", self.boards[dev].run_commands))
                jobs += [(getattr(job, "__name__", "job"), job) for job in self.background]
                board_tasks = [
                    tg.create_task(supervise(name, job, self._stopped), name=name)
                    for name, job in jobs
                ]
                await self._stopped.wait()
                # Listeners first, so no board connects during the shutdown; then boards
                # (their links close with them, nothing reconnects), then the `offline`
                # states while the broker link is still up, then the rest.
                for listener in self.listeners.values():
                    await listener.close()
                for task in board_tasks:
                    task.cancel()
                await asyncio.wait(board_tasks, timeout=SHUTDOWN_HOOK_S)
                await self._shutdown()
                for task in tasks:
                    task.cancel()
        finally:
            for listener in self.listeners.values():
                await listener.close()
        log.info("conduyt-bridge stopped")

    async def _first_connect(self) -> None:
        """Wait (bounded, interruptible by stop) for the first broker connection."""
        waiters = {
            asyncio.create_task(self.mqtt.wait_connected()),
            asyncio.create_task(self._stopped.wait()),
        }
        await asyncio.wait(
            waiters, timeout=STARTUP_BROKER_WAIT_S, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in waiters:
            waiter.cancel()
        await asyncio.wait(waiters)  # a cancellation of run() itself still propagates

    def stop(self) -> None:
        """Ask `run()` to shut down (safe from a signal handler)."""
        self._stopped.set()

    async def _shutdown(self) -> None:
        for hook in self.shutdown_hooks:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_HOOK_S):
                    await hook()
        final = [
            OutMessage(board.topics.status, b"offline", 1, True) for board in self.boards.values()
        ]
        final.append(OutMessage(self.topics.state, b"offline", 1, True))
        await self.mqtt.close(final)
