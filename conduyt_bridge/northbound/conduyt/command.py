"""A command message of the Conduyt layout as a job for the board core
(`conduyt_bridge.core.board.Job`): the handler of its topic kind parses the payload and
calls the core's operations; the outcome goes back as an MQTT report
(`docs/topics.md` §6).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conduyt_bridge.core.board import Board
from conduyt_bridge.core.entities.engine import EntityEngine
from conduyt_bridge.errors import (
    ConduytCommandError,
    ConduytError,
    ConduytForbiddenError,
    ErrorName,
)
from conduyt_bridge.northbound.conduyt.face import BoardFace
from conduyt_bridge.northbound.conduyt.payloads import parse_command_payload
from conduyt_bridge.northbound.conduyt.topics import CommandKind, CommandTopic

if TYPE_CHECKING:
    from conduyt_bridge.northbound.conduyt.handlers.raw import RawController

Handler = Callable[["ConduytBoard", "Command"], Awaitable[dict[str, Any]]]
"""A command handler: returns the success document (without `ok`) or raises
ConduytError."""


@dataclass(slots=True)
class ConduytBoard:
    """What the Conduyt layout holds for one board: the core board, its face (the
    publisher), its raw packet controller, the handlers of its command kinds and its
    declared entities."""

    board: Board
    face: BoardFace
    raw: RawController
    handlers: Mapping[CommandKind, Handler]
    entities: EntityEngine | None = None
    """The board's declared entities (`docs/entities.md`), None when it declares none."""


@dataclass(slots=True)
class Command:
    """A command message for one board, as received from MQTT."""

    ctx: ConduytBoard
    topic: str
    parsed: CommandTopic
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None
    received_at: float = field(default_factory=time.monotonic)
    refused_unread: bool = False
    """True when the payload was refused before decoding (too long): never parse it."""
    _transaction: Any = field(default=None, init=False, repr=False, compare=False)
    _transaction_read: bool = field(default=False, init=False, repr=False, compare=False)

    def transaction(self) -> Any:
        """The `transaction` member of a JSON-object payload, if any (echoed in results).

        Parsed once and kept: a result and an error report both ask for it.
        """
        if not self._transaction_read:
            self._transaction_read = True
            if not self.refused_unread:
                try:
                    self._transaction = parse_command_payload(self.payload).transaction
                except ConduytCommandError:
                    self._transaction = None
        return self._transaction

    # ---- Job ---------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        """The command topic."""
        return self.topic

    @property
    def retained(self) -> bool:
        """Whether the message arrived with the retain flag."""
        return self.retain

    async def run(self, board: Board) -> dict[str, Any]:
        """Run the handler of the topic's kind. Raises ConduytError."""
        handler = self.ctx.handlers.get(self.parsed.kind)
        if handler is None:
            raise ConduytForbiddenError(
                f"{self.parsed.kind} commands are not enabled for board '{board.dev}'",
                ErrorName.NOT_ENABLED,
            )
        return await handler(self.ctx, self)

    def succeeded(self, board: Board, result: dict[str, Any]) -> None:
        """Answer on the response topic: `{"ok": true, …result, "transaction": …}`."""
        doc = {"ok": True, **result}
        transaction = self.transaction()
        if transaction is not None:
            doc["transaction"] = transaction
        self.ctx.face.respond(self.response_topic, self.correlation_data, doc)

    def failed(self, board: Board, error: ConduytError) -> None:
        """Report on `{dev}/error` and the response topic."""
        self.ctx.face.report(
            self.topic, error, self.transaction(), self.response_topic, self.correlation_data
        )


__all__ = ["Command", "ConduytBoard", "Handler"]
