"""The keepalive of an open link: a PING after a quiet spell, the link declared lost after
N unanswered in a row (`docs/architecture.md` §4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from conduyt_bridge.device.link_loss import BoardSilentError
from conduyt_bridge.errors import ConduytNAKError, ConduytTimeoutError


async def keepalive(
    ping: Callable[[], Awaitable[object]],
    last_rx: Callable[[], float],
    *,
    interval_s: float,
    misses_allowed: int,
    on_answer_after_misses: Callable[[int], None],
    log: structlog.stdlib.BoundLogger,
) -> None:
    """PING the board whenever nothing arrived for `interval_s` seconds; run until the
    link is lost (forever when `interval_s` is 0).

    `last_rx()` is the `time.monotonic()` of the last packet received. A board that
    answers again after unanswered PINGs is reported through `on_answer_after_misses`
    with the number of misses (a reset looks like this).

    Raises BoardSilentError (a `ConduytDisconnectedError`) after `misses_allowed`
    unanswered PINGs in a row, and whatever `ping` raises besides a timeout or a NAK.
    """
    if interval_s <= 0:
        await asyncio.Event().wait()
    misses = 0
    while True:
        await asyncio.sleep(interval_s)
        if time.monotonic() - last_rx() >= interval_s:
            try:
                await ping()
            except ConduytTimeoutError:
                misses += 1
                log.info("keepalive PING unanswered", misses=misses)
                if misses >= misses_allowed:
                    raise BoardSilentError(
                        f"board stopped answering: {misses} keepalive PINGs unanswered"
                    ) from None
                continue
            except ConduytNAKError:
                pass  # an answer all the same
        if misses:
            on_answer_after_misses(misses)
        misses = 0
