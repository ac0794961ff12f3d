"""Serve a simulated board on a listening TCP socket, raw packets (`docs/protocol.md` §3.2).

The firmware's own TCP transport is a client that connects out once (§3.2, Q1); this
server is the other arrangement, a board that accepts connections, which is what a host
using `tcp://host:port` talks to (`conduyt_bridge.device.transports.TcpTransport`). It
serves one host at a time: a new connection closes the previous one, as a board with a
single client slot would. The board keeps its state across connections, and with
`faults.tcp_backlog` its receive buffer too, like the firmware's TCP transport (Q24).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.runner import BoardRunner


class TcpBoardServer:
    """A board listening on `host:port` (port 0: any free port, see `address`).

    Use as `async with TcpBoardServer(board, "127.0.0.1", 0) as server: ...`.

    Raises ValueError if the board uses COBS framing (TCP boards send raw packets).
    """

    def __init__(
        self,
        board: SimulatedBoard,
        host: str,
        port: int,
        *,
        tick_interval_s: float | None = None,
        loop_rate_hz: float | None = None,
    ) -> None:
        if board.framing != "raw":
            raise ValueError("a TCP board needs framing='raw' (no COBS on TCP, §3.2)")
        self.board = board
        self.host = host
        self.port = port
        self._tick_interval_s = tick_interval_s
        self._loop_rate_hz = loop_rate_hz
        self._server: asyncio.Server | None = None
        self._runner: BoardRunner | None = None
        self._served: list[BoardRunner] = []

    async def __aenter__(self) -> TcpBoardServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; the requested ones before `start()`."""
        if self._server is None or not self._server.sockets:
            return self.host, self.port
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return len(self._served)

    @property
    def bytes_received(self) -> int:
        """Bytes the board has read from all its connections so far."""
        return sum(r.bytes_received for r in self._served)

    async def start(self) -> tuple[str, int]:
        """Start listening; returns the bound (host, port). Raises OSError (port in use)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        return self.address

    async def close(self) -> None:
        """Stop listening and close the current connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        previous = self._runner
        runner = BoardRunner(
            self.board,
            reader,
            writer,
            tick_interval_s=self._tick_interval_s,
            loop_rate_hz=self._loop_rate_hz,
        )
        self._runner = runner
        self._served.append(runner)
        if previous is not None:
            await previous.close()
        runner.start()
