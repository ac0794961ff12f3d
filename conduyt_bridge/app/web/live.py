"""Live updates for the web console over Server-Sent Events (`docs/console.md` §2).

`LiveHub` listens on the bridge's event bus (`conduyt_bridge.core.events`) and pushes to
every open `/api/events` stream:

- `state`, the whole console document: first on every stream, and when boards were
  added or removed;
- `board`, one board's document: it came online (new HELLO_RESP) or went offline;
- `values`, `{"ds": [{dev, slug, value, updated}], "pins": [{dev, pin, value}]}`: the
  latest datastream and pin values, coalesced per `FLUSH_INTERVAL_S` (a board pushing
  thousands of events a second costs the browser one message per interval);
- `log`, `{dev, ts, text}`: a line the sketch printed, or a LOG/FATAL packet;
- `errors`, `{dev, errors}`: the board's recent error reports changed;
- `counters`, `{broker, uptime_s, boards: {dev: counters}, states}`: every
  `TICK_INTERVAL_S` while a stream is open.

Boards added or removed at run time reach the pages through the host's
`on_board_added`/`on_board_removed` hooks (a new `state` at once); nothing polls the
board list.

The hub also keeps what the bridge does not: the last `LOG_LINES` log lines per board and
the last value of each pin, for the console document of a page opened later. The browser
never polls; a stream that falls `CLIENT_QUEUE_LIMIT` messages or `CLIENT_QUEUE_BYTES`
behind is closed (a stalled browser holds a bounded amount of memory), and the browser's
EventSource reconnects and starts again from a fresh `state`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conduyt_bridge.app.web.console_doc import (
    MAX_ERRORS_SHOWN,
    board_document,
    console_document,
)
from conduyt_bridge.app.web.status import iso_time
from conduyt_bridge.core.events import (
    BoardEvent,
    BoardOffline,
    BoardOnline,
    CommandFailed,
    DatastreamUpdated,
    PacketReceived,
    PinValue,
    TextPrinted,
)
from conduyt_bridge.northbound.conduyt.payloads import json_value
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics
from conduyt_bridge.northbound.host import AdapterHost
from conduyt_bridge.protocol.constants import PacketType

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board

FLUSH_INTERVAL_S = 0.1
"""Values are pushed at most this often, s (the latest value per datastream and pin)."""

TICK_INTERVAL_S = 2.0
"""How often link counters are pushed while a stream is open, s."""

LOG_LINES = 50
"""Log lines kept per board."""

CLIENT_QUEUE_LIMIT = 2000
"""Messages a stream may fall behind before it is closed."""

CLIENT_QUEUE_BYTES = 4 * 1024 * 1024
"""Characters of queued SSE text a stream may fall behind before it is closed (a
`state` document of many boards is large: the message count alone would not bound
memory)."""


class Client:
    """One open event stream: its queued messages (SSE text) and a wake-up."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.queued = 0
        """Characters in `queue`."""
        self.wake = asyncio.Event()
        self.closed = False

    def put(self, message: str) -> None:
        """Queue one SSE message; close the stream when it falls too far behind (the
        first `state` always fits)."""
        if self.closed:
            return
        too_far = len(self.queue) >= CLIENT_QUEUE_LIMIT
        if too_far or (self.queue and self.queued + len(message) > CLIENT_QUEUE_BYTES):
            self.queue.clear()
            self.queued = 0
            self.close()
            return
        self.queue.append(message)
        self.queued += len(message)
        self.wake.set()

    def take(self) -> str:
        """The oldest queued message (the queue must not be empty)."""
        message = self.queue.popleft()
        self.queued -= len(message)
        return message

    def close(self) -> None:
        """End the stream (the server writes what is queued, then stops)."""
        self.closed = True
        self.wake.set()


def sse(event: str, data: Any) -> str:
    """One Server-Sent Events message (compact JSON has no line breaks)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class LiveHub:
    """The bus listener and stream fan-out of one console (see the module docstring)."""

    def __init__(
        self,
        host: AdapterHost,
        topics: BridgeTopics,
        management: Callable[[], bool] = lambda: False,
        *,
        login: bool = False,
    ) -> None:
        self.host = host
        self.login = login
        self.topics = topics
        self.management = management
        self.clients: set[Client] = set()
        self.logs: dict[str, deque[dict[str, Any]]] = {}
        self.pin_values: dict[str, dict[int, int]] = {}
        self._pending_ds: dict[tuple[str, str], dict[str, Any]] = {}
        self._pending_pins: dict[tuple[str, int], dict[str, Any]] = {}
        self._dirty = asyncio.Event()
        self._has_clients = asyncio.Event()
        self._known_boards: tuple[tuple[str, int], ...] = ()
        self._leaving: list[Board] = []
        """Boards being removed: their `on_board_removed` hooks run while they are still
        in `host.boards`, and the pages must drop them at once."""
        self._error_marks: dict[str, tuple[int, Any]] = {}

    def install(self) -> None:
        """Listen on the host's bus (before anything runs, so early log lines are kept)."""
        self.host.bus.subscribe(
            self.on_event,
            kinds=(
                DatastreamUpdated,
                PinValue,
                TextPrinted,
                PacketReceived,
                BoardOnline,
                BoardOffline,
                CommandFailed,
            ),
        )
        # Boards added or removed at run time (`AdapterHost.on_board_added`/`_removed`):
        # the pages re-render from the live `boards` at once.
        self.host.on_board_added(self._board_added)
        self.host.on_board_removed(self._board_removed)

    async def _board_added(self, board: Board) -> None:
        self.check_boards()

    async def _board_removed(self, board: Board, successor: str | None) -> None:
        # Still in `host.boards` while the hooks run: leave it out from now on.
        self._leaving.append(board)
        self.check_boards()

    def live_boards(self) -> dict[str, Board]:
        """`host.boards` without the boards being removed."""
        boards = self.host.boards
        self._leaving = [b for b in self._leaving if boards.get(b.dev) is b]
        return {d: b for d, b in boards.items() if not any(b is x for x in self._leaving)}

    # ---- documents ---------------------------------------------------------------------

    def board_doc(self, dev: str, counters: dict[str, Any] | None = None) -> dict[str, Any]:
        """The console document of board `dev` (see `console_doc.board_document`)."""
        board = self.host.boards[dev]
        if counters is None:
            counters = self.host.health()["boards"].get(dev)
        return board_document(
            board,
            self.topics,
            counters,
            self.pin_values.get(dev, {}),
            self.logs.get(dev, ()),
        )

    def document(self) -> dict[str, Any]:
        """The whole console document (`console_doc.console_document`)."""
        health = self.host.health()
        counters = health["boards"]
        boards = [self.board_doc(dev, counters.get(dev)) for dev in self.live_boards()]
        return console_document(
            health, self.topics, boards, management=self.management(), login=self.login
        )

    # ---- bus ---------------------------------------------------------------------------

    def on_event(self, event: BoardEvent) -> None:
        """Record and push one board event (cheap when no stream is open)."""
        if isinstance(event, DatastreamUpdated):
            if self.clients:
                self._pending_ds[(event.dev, event.slug)] = {
                    "dev": event.dev,
                    "slug": event.slug,
                    "value": json_value(event.value),
                    "updated": iso_time(event.at),
                }
                self._dirty.set()
        elif isinstance(event, PinValue):
            self.pin_values.setdefault(event.dev, {})[event.pin] = event.value
            if self.clients:
                self._pending_pins[(event.dev, event.pin)] = {
                    "dev": event.dev,
                    "pin": event.pin,
                    "value": event.value,
                }
                self._dirty.set()
        elif isinstance(event, PacketReceived):
            packet = event.packet
            if packet.type in (PacketType.LOG, PacketType.FATAL):
                text = packet.payload.decode("utf-8", errors="replace")
                prefix = "FATAL: " if packet.type == PacketType.FATAL else ""
                self.add_log(event.dev, prefix + text)
        elif isinstance(event, TextPrinted):
            self.add_log(event.dev, event.text)
        elif isinstance(event, BoardOnline | BoardOffline):
            if isinstance(event, BoardOnline) and event.changed:
                self.pin_values.pop(event.dev, None)
            if self.clients and event.dev in self.live_boards():
                self.broadcast("board", self.board_doc(event.dev))
        elif isinstance(event, CommandFailed):
            self.check_errors(event.dev)

    def add_log(self, dev: str, text: str) -> None:
        """Keep and push one log line of board `dev`."""
        line = {"dev": dev, "ts": iso_time(time.time()), "text": text}
        self.logs.setdefault(dev, deque(maxlen=LOG_LINES)).append(line)
        if self.clients:
            self.broadcast("log", line)

    # ---- streams -----------------------------------------------------------------------

    def connect(self) -> Client:
        """A new stream, its first message the whole console document."""
        client = Client()
        client.put(sse("state", self.document()))
        self.clients.add(client)
        self._known_boards = self._board_marks(self.live_boards())
        self._has_clients.set()
        return client

    def disconnect(self, client: Client) -> None:
        """Forget a stream that ended."""
        self.clients.discard(client)
        if not self.clients:
            self._has_clients.clear()
            self._pending_ds.clear()
            self._pending_pins.clear()

    def broadcast(self, event: str, data: Any) -> None:
        """Push one message to every open stream."""
        message = sse(event, data)
        for client in list(self.clients):
            client.put(message)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        for client in list(self.clients):
            client.close()

    # ---- periodic work -----------------------------------------------------------------

    @staticmethod
    def _board_marks(live: dict[str, Board]) -> tuple[tuple[str, int], ...]:
        # Identity too: a board restarted with new options keeps its id.
        return tuple((dev, id(b)) for dev, b in live.items())

    def check_boards(self) -> None:
        """Push the whole document if boards were added, removed or replaced since the
        last look."""
        live = self.live_boards()
        marks = self._board_marks(live)
        if marks != self._known_boards:
            self._known_boards = marks
            per_board: tuple[dict[str, Any], ...] = (self.logs, self.pin_values, self._error_marks)
            for kept in per_board:
                for dev in [d for d in kept if d not in live]:
                    del kept[dev]
            if self.clients:
                self.broadcast("state", self.document())

    def check_errors(self, dev: str) -> None:
        """Push board `dev`'s recent errors if they changed since the last push."""
        board = self.host.boards.get(dev)
        if board is None:
            return
        errors = board.errors
        mark = (len(errors), errors[-1].get("ts") if errors else None)
        if self._error_marks.get(dev) == mark:
            return
        self._error_marks[dev] = mark
        if self.clients:
            newest = list(reversed(errors))[:MAX_ERRORS_SHOWN]
            self.broadcast("errors", {"dev": dev, "errors": newest})

    def flush(self) -> None:
        """Push the values gathered since the last flush."""
        ds, pins = list(self._pending_ds.values()), list(self._pending_pins.values())
        self._pending_ds.clear()
        self._pending_pins.clear()
        if ds or pins:
            self.broadcast("values", {"ds": ds, "pins": pins})

    def tick(self) -> None:
        """Counters, and any change of the boards' recent errors (a board's own ERROR
        reports raise no bus event)."""
        health = self.host.health()
        for dev in self.host.boards:
            self.check_errors(dev)
        self.broadcast(
            "counters",
            {
                "broker": health["broker"],
                "uptime_s": health["uptime_s"],
                "boards": health["boards"],
                "states": {dev: b.state for dev, b in self.host.boards.items()},
            },
        )

    async def run(self) -> None:
        """Flush values and tick while streams are open, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._flush_loop())
            tg.create_task(self._tick_loop())

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(FLUSH_INTERVAL_S)
            self._dirty.clear()
            self.flush()

    async def _tick_loop(self) -> None:
        while True:
            await self._has_clients.wait()
            await asyncio.sleep(TICK_INTERVAL_S)
            if self.clients:
                self.tick()


__all__ = [
    "CLIENT_QUEUE_BYTES",
    "CLIENT_QUEUE_LIMIT",
    "FLUSH_INTERVAL_S",
    "LOG_LINES",
    "TICK_INTERVAL_S",
    "Client",
    "LiveHub",
    "sse",
]
