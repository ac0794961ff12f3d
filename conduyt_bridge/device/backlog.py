"""Draining a TCP board's stale receive backlog (`docs/protocol.md` Q24).

A board on the Conduyt TCP transport decodes at most one packet per poll, only when new
bytes arrive, and keeps its receive buffer across reconnects: after a stall, requests
queue up in it and every later request is answered with the reply to an older one. When
a HELLO goes unanswered on a raw link while answers with older sequence numbers than the
one in flight arrive (the evidence, named in the log line), the handshake drains that
backlog before it retries: it sends a PING one byte per write, `DRAIN_BYTE_GAP_S` apart,
so each byte is a poll of its own and decodes one stale packet, and discards the stale
answers until the PONG carries that PING's sequence number. PINGs sent whole, back to
back, cannot drain it: each adds a packet for the one it decodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from conduyt_bridge.device.link import Link
from conduyt_bridge.device.pending import PendingTable
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.protocol.constants import PacketType, type_name
from conduyt_bridge.protocol.packet import encode_packet

DRAIN_PINGS = 4
"""Byte-by-byte PINGs the handshake sends at most to drain a TCP board's backlog (each
decodes up to seven stale packets)."""

DRAIN_BYTE_GAP_S = 0.03
"""Pause between two bytes of a draining PING, so the board polls each on its own."""

UNMATCHED_KEPT = 16
"""Answers with an unknown sequence number remembered as evidence of a stale backlog."""


def stale_answers(asked: int, unmatched: Sequence[tuple[int, int]]) -> str:
    """Evidence of a stale receive backlog (Q24), or "" if there is none.

    `asked` is the sequence number of the request in flight; `unmatched` the (TYPE, SEQ)
    of answers that matched no pending request. An answer counts when its SEQ is older
    than `asked` by 1..127 in the 1..255 cycle (a newer one is not a backlog).
    """
    older = [f"{type_name(t)} seq {s}" for t, s in unmatched if 1 <= (asked - s) % 255 <= 127]
    return f"request seq {asked} answered by {', '.join(older)}" if older else ""


async def drain_backlog(
    link: Link,
    pending: PendingTable,
    window: asyncio.Semaphore,
    stats: SessionStats,
    *,
    timeout_s: float,
    evidence: str,
    log: structlog.stdlib.BoundLogger,
) -> bool:
    """Empty a TCP board's stale receive backlog (Q24); True once a PONG matched.

    Sends up to `DRAIN_PINGS` PINGs byte by byte through `window` (the session's
    in-flight limit), each waiting `timeout_s` seconds for its own PONG.
    """
    log.warning("board answers older requests: draining its receive backlog", evidence=evidence)
    for _ in range(DRAIN_PINGS):
        async with window:
            seq = pending.next_seq()
            wire = encode_packet(PacketType.PING, seq, b"")
            request = pending.open(seq, wire, "PING")
            try:
                for i in range(len(wire)):
                    await link.send(wire[i : i + 1])
                    await asyncio.sleep(DRAIN_BYTE_GAP_S)
                stats.packets_out += 1
                async with asyncio.timeout(timeout_s):
                    await request.future
            except TimeoutError:
                continue
            finally:
                pending.close(seq)
        log.info("receive backlog drained", ping_seq=seq)
        return True
    return False
