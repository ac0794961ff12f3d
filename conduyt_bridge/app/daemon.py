"""The Bridge: the composition root that wires boards, their sessions, the broker link
and the northbound adapters, and supervises them.

Nothing here speaks the protocol or a northbound format: it builds the board cores
(`conduyt_bridge.core`) and their sessions from the settings, installs the adapters
(`default_adapters`), routes broker messages to the adapters' routes, runs their hooks
and jobs, and shuts down cleanly (`docs/architecture.md` §2, §3, §6, §7). It implements
the host protocol adapters code against (`conduyt_bridge.northbound.host.AdapterHost`).

In a fleet (`docs/fleet.md`) the bridge is `[bridge] id`: its Will is on
`{base}/bridge/{id}/state`, and a board's session starts only once this bridge holds the
board's claim (`conduyt_bridge.northbound.conduyt.claims`); a board another live bridge
claims is refused (`refused`) and taken over when that bridge goes offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import structlog

from conduyt_bridge.app.board_transport import make_transport
from conduyt_bridge.app.config import DeviceConfig, Settings
from conduyt_bridge.app.health import health_document
from conduyt_bridge.app.plugins import default_adapters
from conduyt_bridge.app.requests.contract import RequestHandler
from conduyt_bridge.app.requests.mqtt import RequestTopics
from conduyt_bridge.app.requests.service import RequestService
from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import EventBus
from conduyt_bridge.core.pins import TaskSet
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.device.transports import TcpListener
from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.conduyt.claims import ClaimKeeper
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.northbound.host import (
    Adapter,
    BackgroundJob,
    BoardAddedHook,
    BoardRemovedHook,
    Hook,
    MessageHandler,
    Router,
)
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage
from conduyt_bridge.northbound.mqtt.inbound import payload_bytes
from conduyt_bridge.version import __version__

log = structlog.stdlib.get_logger(__name__)


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
    """The running daemon: boards, their sessions, the broker link and the adapters."""

    def __init__(
        self,
        settings: Settings,
        adapters: Sequence[Adapter] | None = None,
        *,
        config_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        """The config file the settings came from: the request API writes its changes
        there (`docs/requests.md` §4); None for a bridge configured without one."""
        self.bridge_id = settings.bridge.id
        self.topics = BridgeTopics(settings.bridge.base_topic, self.bridge_id)
        self.started_at = time.time()
        self.bus = EventBus()
        self.mqtt = MqttConnection(
            settings.mqtt, self.topics.state, self._on_message, self._on_connect
        )
        self.listeners: dict[tuple[str, int], TcpListener] = {}
        self.boards: dict[str, Board] = {}
        self.sessions: dict[str, DeviceSession] = {}
        self._polls = TaskSet()
        self._start_hooks: list[Hook] = []
        self._connect_hooks: list[Hook] = []
        self._shutdown_hooks: list[Hook] = []
        self._routes: dict[str, MessageHandler] = {}
        self._routers: list[Router] = []
        self._jobs: list[tuple[str, BackgroundJob]] = []
        self._finals: list[Callable[[], list[OutMessage]]] = []
        self._stopped = asyncio.Event()
        self._running = asyncio.Event()
        """Set once `run()` started every board and job: boards may be added from then."""
        self._group: asyncio.TaskGroup | None = None
        self._session_tasks: dict[str, asyncio.Task[None]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._added_hooks: list[BoardAddedHook] = []
        self._removed_hooks: list[BoardRemovedHook] = []
        for device in settings.devices:
            self._add_board(device)
        self._stopping_sessions: dict[str, asyncio.Task[None]] = {}
        """Board id → the task waiting for its cancelled session to end (`_stop_session`)."""
        self.claims = ClaimKeeper(
            self.topics,
            self.boards,
            self.mqtt,
            self._start_session,
            self._stop_session,
            health_interval_s=settings.bridge.health_interval_s,
        )
        # First of the connect hooks: the claims' subscriptions go before the adapters'.
        self._connect_hooks.append(self.claims.on_connect)
        self._jobs.append(("claims", self.claims.watch))
        for adapter in default_adapters(settings) if adapters is None else adapters:
            adapter(self)
        self._service = RequestService(self)
        self.requests: RequestHandler = self._service
        """The request API (`docs/requests.md`): its MQTT front end is installed here, the
        web console calls `await bridge.requests.handle(action, payload)`."""
        RequestTopics(self, self.topics, self.requests).install()
        self._reloads: set[asyncio.Task[None]] = set()

    def _add_board(self, device: DeviceConfig) -> Board:
        board = Board(device, self.bus, self._polls)
        transport = make_transport(device, self.listeners)
        session = DeviceSession(
            device,
            transport,
            board,
            # The order of `docs/architecture.md` §4: RESET + STREAM_STOP by the session,
            # then pin modes and subscriptions, then the replay of retained datastreams.
            handshake_hooks=[board.pins.on_handshake, board.replay_retained],
        )
        board.session = session
        self.boards[board.dev] = board
        self.sessions[board.dev] = session
        return board

    # ---- boards added and removed at run time (`docs/architecture.md` §11) ------------------

    async def add_board(self, device: DeviceConfig) -> Board:
        """Add board `device` (its id must be new) and start it at once while running:
        claim, the adapters' `on_board_added` hooks, then its command worker and session.
        Nothing else restarts."""
        board = self._add_board(device)
        runs = self.claims.add_board(board.dev)
        await self._board_hooks(self._added_hooks, board)
        if self._group is not None and not self._stopped.is_set():
            address = device.net_address if device.port_kind == "listen" else None
            if address is not None:
                with contextlib.suppress(OSError):  # the session retries and says why
                    await self.listeners[address].start()
            self._start_worker(board.dev)
            if runs:
                await self._start_session(board.dev)
        return board

    async def remove_board(self, dev: str, successor: str | None = None) -> Board:
        """Stop board `dev` and remove it: its session and worker end (`BoardOffline` if
        it was online), its claim is released unless `successor` is `dev` (a restart),
        then the adapters' `on_board_removed(board, successor)` hooks run. Raises
        KeyError for an unknown id."""
        board, session = self.boards[dev], self.sessions[dev]
        was_online = board.online
        tasks = [self._session_tasks.pop(dev, None), self._workers.pop(dev, None)]
        tasks.append(self._stopping_sessions.pop(dev, None))
        running = [t for t in tasks if t is not None]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=SHUTDOWN_HOOK_S)
        if was_online:
            what = "removed" if successor is None else f"replaced by '{successor}'"
            await board.on_offline(session, f"board {what} at run time")
        self.claims.remove_board(dev, release=successor != dev)
        # Last registered, first run: a hook undoes its adapter's later set-up first.
        await self._board_hooks(self._removed_hooks[::-1], board, successor)
        del self.boards[dev], self.sessions[dev]
        return board

    async def _board_hooks(self, hooks: Sequence[Callable[..., Any]], *args: Any) -> None:
        for hook in hooks:
            try:
                await hook(*args)
            except Exception:  # one adapter's bug must not leave the others behind
                log.exception("board hook failed", hook=repr(hook))

    def on_board_added(self, hook: BoardAddedHook) -> None:
        """See `AdapterHost.on_board_added`."""
        self._added_hooks.append(hook)

    def on_board_removed(self, hook: BoardRemovedHook) -> None:
        """See `AdapterHost.on_board_removed`."""
        self._removed_hooks.append(hook)

    def _start_worker(self, dev: str) -> None:
        running = self._workers.get(dev)
        if self._group is not None and (running is None or running.done()):
            name = f"commands-{dev}"
            job = supervise(name, self.boards[dev].run_commands, self._stopped)
            self._workers[dev] = self._group.create_task(job, name=name)

    # ---- AdapterHost ------------------------------------------------------------------------

    @property
    def refused(self) -> dict[str, str]:
        """Boards not run because another live bridge claims them: id → reason
        (`AdapterHost.refused`, `docs/fleet.md` §2)."""
        return self.claims.refused

    def runs(self, dev: str) -> bool:
        """See `AdapterHost.runs`."""
        return dev in self.claims.held

    def on_refused_changed(self, listener: Callable[[], None]) -> None:
        """See `AdapterHost.on_refused_changed`."""
        self.claims.listeners.append(listener)

    def on_start(self, hook: Hook) -> None:
        """See `AdapterHost.on_start`."""
        self._start_hooks.append(hook)

    def on_connect(self, hook: Hook) -> None:
        """See `AdapterHost.on_connect`."""
        self._connect_hooks.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """See `AdapterHost.on_shutdown`."""
        self._shutdown_hooks.append(hook)

    def route(self, topic: str, handler: MessageHandler) -> None:
        """See `AdapterHost.route`."""
        self._routes[topic] = handler

    def add_router(self, router: Router) -> None:
        """See `AdapterHost.add_router`."""
        self._routers.append(router)

    def add_job(self, name: str, job: BackgroundJob) -> None:
        """See `AdapterHost.add_job`."""
        self._jobs.append((name, job))

    def add_final_messages(self, provider: Callable[[], list[OutMessage]]) -> None:
        """See `AdapterHost.add_final_messages`."""
        self._finals.append(provider)

    # ---- MQTT side ------------------------------------------------------------------------

    async def _on_connect(self) -> None:
        for hook in self._connect_hooks:
            await hook()

    async def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        if self.claims.handles(topic):
            await self.claims.on_message(topic, payload_bytes(message))
            return
        handler = self._routes.get(topic)
        if handler is not None:
            await handler(message)
            return
        for router in self._routers:
            if await router(message):
                return
        log.debug("message on an unknown topic", topic=topic)

    def health(self) -> dict[str, Any]:
        """The health document of `{base}/bridge/{id}/health` and the HTTP endpoint
        (`conduyt_bridge.app.health.health_document`)."""
        return health_document(self)

    # ---- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` is called (or the task is cancelled), then shut down cleanly."""
        log.info("conduyt-bridge starting", version=__version__, boards=list(self.boards))
        try:
            async with asyncio.TaskGroup() as tg:
                for (host, port), listener in self.listeners.items():
                    try:
                        await listener.start()
                    except OSError as exc:  # its boards retry the bind; the rest runs
                        log.warning(
                            "cannot listen for TCP boards",
                            host=host,
                            port=port,
                            error=describe_exception(exc),
                        )
                tasks = [
                    tg.create_task(supervise("mqtt", self.mqtt.run, self._stopped), name="mqtt")
                ]
                await self._first_connect()
                # Claims before the start hooks: adapters starting up see `refused`.
                granted = await self._claim_boards()
                if not self._stopped.is_set():
                    for hook in self._start_hooks:
                        try:
                            await hook()
                        except Exception:  # an adapter's bug must not keep boards down
                            log.exception("start hook failed", hook=repr(hook))
                self._group = tg
                name = "pin-polls"
                board_tasks = [
                    tg.create_task(supervise(name, self._polls.run, self._stopped), name=name)
                ]
                for dev in self.sessions:
                    self._start_worker(dev)
                # The adapters' jobs (their own broker sessions, health, HTTP) live until
                # after the shutdown hooks: a hook may still need its adapter's link.
                tasks += [
                    tg.create_task(supervise(name, job, self._stopped), name=name)
                    for name, job in self._jobs
                ]
                for dev in granted:
                    await self._start_session(dev)
                self._running.set()
                await self._stopped.wait()
                self._group = None
                board_tasks += self._session_tasks.values()
                board_tasks += self._workers.values()
                board_tasks += self._stopping_sessions.values()
                # Listeners first, so no board connects during the shutdown; then boards
                # (their links close with them, nothing reconnects), then the adapters'
                # shutdown hooks and final messages while the broker links are still up,
                # then the rest.
                for listener in self.listeners.values():
                    await listener.close()
                for task in board_tasks:
                    task.cancel()
                await asyncio.wait(board_tasks, timeout=SHUTDOWN_HOOK_S)
                self.claims.closing = True  # our own `offline` is not answered now
                await self._shutdown()
                for task in tasks:
                    task.cancel()
        finally:
            for listener in self.listeners.values():
                await listener.close()
        log.info("conduyt-bridge stopped")

    async def _claim_boards(self) -> list[str]:
        """The boards this bridge may run (`ClaimKeeper.start`); all of them when the
        claims cannot be decided (a bug must not keep boards down)."""
        if self._stopped.is_set():
            return []
        try:
            return await self.claims.start()
        except Exception:
            log.exception("board claims failed: starting every board")
            return list(self.sessions)

    async def _start_session(self, dev: str) -> None:
        """Start board `dev`'s session (a claim was granted); no-op while stopping or when
        it runs already. A session still ending (`_stop_session`) is waited for first, in
        a task of its own: this is called from the broker link's message handler."""
        tg = self._group
        task = self._session_tasks.get(dev)
        if tg is None or self._stopped.is_set() or (task is not None and not task.done()):
            return
        ending = self._stopping_sessions.get(dev)
        if ending is not None and not ending.done():

            async def start_after() -> None:
                await asyncio.wait([ending])
                if self._session_tasks.get(dev) is later:
                    del self._session_tasks[dev]
                await self._start_session(dev)

            later = tg.create_task(start_after(), name=f"restart-{dev}")
            self._session_tasks[dev] = later
            return
        name = f"session-{dev}"
        job = self.sessions[dev].run
        self._session_tasks[dev] = tg.create_task(
            supervise(name, job, self._stopped), name=name
        )

    async def _stop_session(self, dev: str) -> None:
        """Stop board `dev`'s session (its claim went to another bridge) without waiting:
        called from the broker link's message handler, which must not stall. The session
        is cancelled; a tracked task waits (bounded) for it to end, and a later
        `_start_session` of the board waits for that task."""
        task = self._session_tasks.pop(dev, None)
        if task is None or task.done():
            return
        task.cancel()

        async def wait_ended() -> None:
            await asyncio.wait([task], timeout=SHUTDOWN_HOOK_S)
            if self._stopping_sessions.get(dev) is waiter:
                del self._stopping_sessions[dev]

        waiter = asyncio.create_task(wait_ended(), name=f"stop-{dev}")
        self._stopping_sessions[dev] = waiter

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

    async def wait_running(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`, s, and not once stopping) until `run()` has started
        the boards and jobs; False when it did not (the request API refuses changes
        then, `docs/requests.md` §2)."""
        if self._running.is_set() or self._stopped.is_set():
            return self._running.is_set()  # the usual case: no waiter tasks per request
        waiters = {
            asyncio.create_task(self._running.wait()),
            asyncio.create_task(self._stopped.wait()),
        }
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        return self._running.is_set()

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called: the request API refuses changes
        (`docs/requests.md` §2)."""
        return self._stopped.is_set()

    def reload_soon(self) -> None:
        """SIGHUP: reload the config file in a task (`docs/requests.md` §6)."""
        task = asyncio.get_running_loop().create_task(self._service.reload(), name="reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _shutdown(self) -> None:
        for hook in self._shutdown_hooks:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SHUTDOWN_HOOK_S):
                    await hook()
        final: list[OutMessage] = []
        for provider in self._finals:
            try:
                final += provider()
            except Exception:  # the others' `offline` states must still go out
                log.exception("final messages failed", provider=repr(provider))
        await self.mqtt.close(final)
