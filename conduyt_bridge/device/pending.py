"""The pending-request table of one session: sequence numbers and the replies awaited.

`docs/protocol.md` §1.6: the host numbers its commands 1..255, never 0 (events and the
CRC-NAK carry 0) and never a number still in flight; every direct reply echoes it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from conduyt_bridge.errors import ConduytDisconnectedError, ConduytError
from conduyt_bridge.protocol.packet import Packet


@dataclass
class PendingRequest:
    """One command sent and not answered yet."""

    future: asyncio.Future[Packet]
    wire: bytes
    """The encoded packet, kept to send it again after a CRC-NAK."""
    request: str
    """The command's name (`PING`), for errors."""
    sent_at: float
    """`time.monotonic()` when it was sent, seconds."""
    retransmitted: bool = False


class PendingTable:
    """Pending commands by sequence number."""

    def __init__(self) -> None:
        self.seq = 0
        """The sequence number handed out last (0 before the first)."""
        self._by_seq: dict[int, PendingRequest] = {}

    def next_seq(self) -> int:
        """The next free sequence number, 1..255 in a cycle.

        Raises ConduytDisconnectedError when all 255 are in flight.
        """
        for _ in range(255):
            self.seq = self.seq % 255 + 1
            if self.seq not in self._by_seq:
                return self.seq
        raise ConduytDisconnectedError("no free sequence number: 255 commands in flight")

    def open(self, seq: int, wire: bytes, request: str) -> PendingRequest:
        """Register command `seq` (its encoded `wire` bytes) as waiting for a reply."""
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        pending = PendingRequest(future, wire, request, time.monotonic())
        self._by_seq[seq] = pending
        return pending

    def waiting(self) -> bool:
        """True while some command waits for its reply (or was just answered and its
        caller has not run yet)."""
        return bool(self._by_seq)

    def close(self, seq: int) -> None:
        """Forget command `seq` (answered, timed out or abandoned)."""
        self._by_seq.pop(seq, None)

    def resolve(self, packet: Packet) -> bool:
        """Hand a reply to the command with its sequence number; False if none waits."""
        pending = self._by_seq.get(packet.seq)
        if pending is None or pending.future.done():
            return False
        pending.future.set_result(packet)
        return True

    def take_oldest_for_retransmit(self) -> PendingRequest | None:
        """The oldest command not sent twice yet, now marked as sent twice; None if none.

        The board NAKs a corrupted frame with SEQ 0, not the command's (§1.6), so the
        oldest outstanding command is the one to send again, once.
        """
        waiting = [p for p in self._by_seq.values() if not p.retransmitted]
        if not waiting:
            return None
        oldest = min(waiting, key=lambda p: p.sent_at)
        oldest.retransmitted = True
        return oldest

    def fail_all(self, error: ConduytError) -> None:
        """Fail every waiting command with `error` and empty the table."""
        for pending in self._by_seq.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._by_seq.clear()
