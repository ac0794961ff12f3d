"""The narrow host protocol every northbound adapter codes against.

An adapter (`northbound/conduyt/`, `northbound/homeassistant/`, a Homie or Sparkplug one)
is a callable `install(host)` that the composition root (`conduyt_bridge/app/`) calls once,
after the boards exist and before anything runs. Through the host it reads the boards
(`conduyt_bridge.core.board.Board`) and the shared broker link, subscribes to the boards'
events (`host.bus`), and registers what it needs to run: hooks, message routes,
background jobs and final messages. It never sets attributes of the host, and the host
never knows which adapters exist: adding one is its own folder plus one line in the
composition root (`docs/architecture.md` §2).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

import aiomqtt

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.events import EventBus
from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.northbound.mqtt.connection import MqttConnection, OutMessage

Hook = Callable[[], Awaitable[None]]
"""An awaitable hook without arguments."""

MessageHandler = Callable[[aiomqtt.Message], Awaitable[None]]
"""Handles one message from the broker."""

Router = Callable[[aiomqtt.Message], Awaitable[bool]]
"""Offered every message no exact route took; returns True when it handled it."""

BackgroundJob = Callable[[], Coroutine[Any, Any, None]]
"""A background job, run (and restarted if it ever ends) under the host's supervisor."""

BoardAddedHook = Callable[[Board], Awaitable[None]]
"""Called with a board added while the bridge runs (`AdapterHost.on_board_added`)."""

BoardRemovedHook = Callable[[Board, str | None], Awaitable[None]]
"""Called with a board removed while the bridge runs and the id of its successor, if any
(`AdapterHost.on_board_removed`)."""


class AdapterHost(Protocol):
    """What a northbound adapter may use of the bridge."""

    @property
    def boards(self) -> Mapping[str, Board]:
        """Every configured board by id, in configuration order."""
        ...

    @property
    def sessions(self) -> Mapping[str, DeviceSession]:
        """Every board's session by id (link state and counters, `SessionStats`)."""
        ...

    @property
    def started_at(self) -> float:
        """When the bridge started, s since the epoch."""
        ...

    @property
    def bus(self) -> EventBus:
        """The boards' events (`conduyt_bridge.core.events`)."""
        ...

    @property
    def mqtt(self) -> MqttConnection:
        """The shared broker link (publish never blocks, `docs/architecture.md` §6)."""
        ...

    def health(self) -> dict[str, Any]:
        """The bridge's health document (`docs/topics.md` §2)."""
        ...

    @property
    def refused(self) -> Mapping[str, str]:
        """Boards this bridge does not run because another live bridge claims them: board
        id → why, naming the owner (`docs/fleet.md` §2). An adapter publishes nothing for
        them."""
        ...

    def runs(self, dev: str) -> bool:
        """True once this bridge holds board `dev`'s claim (False before the claims are
        decided at start, and for a refused board): only then are its topics ours."""
        ...

    def on_refused_changed(self, listener: Callable[[], None]) -> None:
        """Call `listener` (it must not block) once the claims are decided at start and
        whenever `refused` changed."""
        ...

    def on_start(self, hook: Hook) -> None:
        """Run `hook` once at start, after the first broker connection (or its timeout)
        and before the boards' sessions start (e.g. to read retained state back)."""
        ...

    def on_connect(self, hook: Hook) -> None:
        """Run `hook` after every broker (re)connect, in registration order."""
        ...

    def on_shutdown(self, hook: Hook) -> None:
        """Run `hook` at shutdown, after the boards stopped and while the broker link and
        the adapters' jobs are still up (bounded to 2 s)."""
        ...

    def route(self, topic: str, handler: MessageHandler) -> None:
        """Send every message on exactly `topic` to `handler` (the adapter subscribes)."""
        ...

    def add_router(self, router: Router) -> None:
        """Offer every message no exact route took to `router`, in registration order."""
        ...

    def add_job(self, name: str, job: BackgroundJob) -> None:
        """Run `job` in the background for the bridge's lifetime: it starts with the boards
        and is cancelled after the shutdown hooks and the final messages."""
        ...

    def on_board_added(self, hook: BoardAddedHook) -> None:
        """Run `hook(board)` for each board added while the bridge runs (the request API,
        a config reload: `docs/architecture.md` §11): after it joined `boards` and its
        claim was decided (`runs`), before its session starts. Not called for the boards
        configured at start. Hooks run in registration order; one that raises is logged
        and the others still run."""
        ...

    def on_board_removed(self, hook: BoardRemovedHook) -> None:
        """Run `hook(board, successor)` for each board removed while the bridge runs:
        after its session and command worker stopped (`BoardOffline` was delivered if it
        was online) and its claim was released, while it is still in `boards`.
        `successor` is the id of the board that takes its place: the new id for a rename,
        the same id for a restart with changed options; None for a removal, after which
        an adapter clears everything it published for the board (`docs/architecture.md`
        §11). They run in reverse registration order (the last registered first), so an
        adapter's later set-up is undone before what it builds on."""
        ...

    def add_final_messages(self, provider: Callable[[], list[OutMessage]]) -> None:
        """Messages to publish as the very last ones at a clean shutdown (e.g. `offline`
        states, since a clean DISCONNECT suppresses the Will)."""
        ...


Adapter = Callable[[AdapterHost], None]
"""A northbound adapter: installs itself on the host."""

__all__ = [
    "Adapter",
    "AdapterHost",
    "BackgroundJob",
    "BoardAddedHook",
    "BoardRemovedHook",
    "Hook",
    "MessageHandler",
    "Router",
]
