"""The wait before a lost link is reopened, cut short when a network serial server is back.

For a network serial server (`socket://`, `rfc2217://`) the backoff is watched by a bare
TCP connect probe every `NETWORK_PROBE_INTERVAL_S` while the server is unreachable (the
open was refused), and the first probe that connects ends the wait: a server back after a
long outage is noticed within seconds, not at the end of a backoff grown to
`reconnect_max_s`. A wait after an open the server took (the board did not answer, or the
link was lost) is a plain sleep with no probe, so a board behind a working server is not
reset by probes (`docs/network-serial.md`).
"""

from __future__ import annotations

import asyncio
import time

import structlog

from conduyt_bridge.device.transports import SerialTransport, Transport, tcp_reachable

NETWORK_PROBE_INTERVAL_S = 2.0
"""Seconds between two TCP connect probes of an unreachable network serial server."""

NETWORK_PROBE_TIMEOUT_S = 1.0
"""Seconds one TCP connect probe may take."""


async def wait_before_reopen(
    transport: Transport,
    delay_s: float,
    *,
    server_down: bool,
    log: structlog.stdlib.BoundLogger,
) -> None:
    """Sleep `delay_s` seconds before reopening `transport`, or less if a network server
    comes back.

    `server_down`: the open just failed because the server did not take the connection.
    Only then is the server probed, and only for `socket://` and `rfc2217://` ports (a
    local device has no cheap reachability test). A server that took the connection is
    not probed at all: with raw TCP each probe makes the server open (and may reset) the
    device behind it.
    """
    address = transport.network_address if isinstance(transport, SerialTransport) else None
    if address is None or not server_down:
        await asyncio.sleep(delay_s)
        return
    deadline = time.monotonic() + delay_s
    while (remaining := deadline - time.monotonic()) > 0:
        if remaining <= NETWORK_PROBE_INTERVAL_S:
            await asyncio.sleep(remaining)
            return
        await asyncio.sleep(NETWORK_PROBE_INTERVAL_S)
        if await tcp_reachable(*address, timeout_s=NETWORK_PROBE_TIMEOUT_S):
            log.info(
                "network serial server reachable again",
                port=transport.description,
                backoff_cut_s=round(deadline - time.monotonic(), 1),
            )
            return
