"""Commands from the web console, run exactly as the same command arriving on MQTT
(`docs/console.md` §3).

The console names a command by its Conduyt command topic below the board
(`ds/setpoint/set`, `pin/13/mode/set`, `module/servo/write`, `cmd`: `docs/topics.md` §4)
and sends the payload an MQTT client would send. `ConsoleCommands.run` builds the Conduyt
layout's own `Command` for it (`conduyt_bridge.northbound.conduyt.command`) with the
layout's handlers, and queues it on the board's worker (`Board.submit`): the same parsing,
the same validation against the HELLO_RESP, the same core operations, the same refusal
messages, the same error report on `{base}/{dev}/error` and in the board's recent errors.
The console only waits for the outcome and hands it back as JSON.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conduyt_bridge.errors import ConduytError, ConduytPayloadError, ErrorName
from conduyt_bridge.northbound.conduyt.adapter import payload_limit
from conduyt_bridge.northbound.conduyt.command import Command, ConduytBoard
from conduyt_bridge.northbound.conduyt.face import BoardFace
from conduyt_bridge.northbound.conduyt.handlers import HANDLERS
from conduyt_bridge.northbound.conduyt.handlers.raw import RawController
from conduyt_bridge.northbound.conduyt.payloads import PayloadFormat, error_report
from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, parse_command_topic
from conduyt_bridge.northbound.host import AdapterHost

if TYPE_CHECKING:
    from conduyt_bridge.core.board import Board

ANSWER_TIMEOUT_S = 60.0
"""Longest wait for a queued command's outcome, s (the worker always answers; this only
bounds a board removed while the command waited)."""

MAX_COMMAND_PATH = 256
"""Longest command path accepted (characters)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A console command's outcome: the HTTP status and the JSON document.

    200 `{"ok": true, …result}`; 422 the error report of `docs/topics.md` §6 with
    `"ok": false`; 404 for an unknown board, 400 for a path that is no command topic,
    504 when the board's worker never answered.
    """

    status: int
    doc: dict[str, Any]


class _ConsoleJob:
    """A `Command` of the Conduyt layout whose outcome also resolves a future."""

    def __init__(self, command: Command, done: asyncio.Future[Outcome]) -> None:
        self.command = command
        self.done = done

    @property
    def label(self) -> str:
        return self.command.label

    @property
    def retained(self) -> bool:
        return False

    async def run(self, board: Board) -> dict[str, Any]:
        return await self.command.run(board)

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        self.command.succeeded(board, result)
        if not self.done.done():
            self.done.set_result(Outcome(200, {"ok": True, **result}))

    def failed(self, board: Board, error: ConduytError) -> None:
        self.command.failed(board, error)  # {dev}/error and the board's recent errors
        if not self.done.done():
            report = error_report(self.command.topic, error)
            self.done.set_result(Outcome(422, {"ok": False, **report}))


class ConsoleCommands:
    """Runs console commands for the boards of one host (`host.boards`, read live, so a
    board added at run time is commandable at once)."""

    def __init__(
        self, host: AdapterHost, topics: BridgeTopics, payload_format: PayloadFormat = "plain"
    ) -> None:
        self.host = host
        self.topics = topics
        self.payload_format = payload_format
        self._contexts: dict[str, ConduytBoard] = {}

    def context(self, board: Board) -> ConduytBoard:
        """The Conduyt layout's per-board context for `board` (its face publishes the
        outcome reports; the raw controller keeps no state of its own)."""
        ctx = self._contexts.get(board.dev)
        if ctx is None or ctx.board is not board:
            face = BoardFace(
                board,
                self.topics.device(board.dev),
                self.host.mqtt,
                payload_format=self.payload_format,
            )
            ctx = ConduytBoard(board, face, RawController(board, face), HANDLERS)
            self._contexts[board.dev] = ctx
        return ctx

    async def run(self, dev: str, path: str, payload: bytes) -> Outcome:
        """Run command `path` (a command topic below `{base}/{dev}/`) with `payload` on
        board `dev` and wait for its outcome (see `Outcome`)."""
        board = self.host.boards.get(dev)
        if board is None:
            message = f"board '{dev}' does not exist"
            return Outcome(404, {"ok": False, "error": "unknown_board", "message": message})
        topic = f"{self.topics.device(dev).prefix}/{path}"
        parsed = parse_command_topic(self.topics.base, topic)
        if len(path) > MAX_COMMAND_PATH or parsed is None or parsed.dev != dev:
            shown = path if len(path) <= 60 else path[:57] + "..."
            message = (
                f"'{shown}' is not a command topic of the Conduyt layout "
                "(docs/topics.md §4: ds/{slug}/set, pin/{n}/set, pin/{n}/mode/set, "
                "pin/{n}/get, pin/{n}/subscribe/set, module/{mod}/{command}, cmd)"
            )
            return Outcome(400, {"ok": False, "error": "bad_command", "message": message})
        # Forget the contexts of boards removed at run time.
        boards = self.host.boards
        self._contexts = {d: c for d, c in self._contexts.items() if boards.get(d) is c.board}
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()
        command = Command(ctx=self.context(board), topic=topic, parsed=parsed, payload=payload)
        job = _ConsoleJob(command, done)
        limit = payload_limit(board)
        if len(payload) > limit:
            command.refused_unread = True
            job.failed(
                board,
                ConduytPayloadError(
                    f"payload of {len(payload)} bytes is longer than any command for "
                    f"board '{dev}' can be ({limit} bytes at most)",
                    ErrorName.PAYLOAD_TOO_LONG,
                ),
            )
        else:
            board.submit(job)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                return await done
        except TimeoutError:
            message = f"board '{dev}' did not run the command within {ANSWER_TIMEOUT_S:g} s"
            return Outcome(504, {"ok": False, "error": "timeout", "message": message})


__all__ = ["ANSWER_TIMEOUT_S", "ConsoleCommands", "Outcome"]
