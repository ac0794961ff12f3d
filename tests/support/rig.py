"""The test rig of the command e2e tests (pins, modules, raw packets, fuzz).

A simulated board served on a real pty, a running bridge against the test Mosquitto, and a
Recorder of everything under the test's base topic. Commands are published with an MQTT 5
Response Topic so a test waits for the exact outcome of each one; packets are checked on
the simulator's receive log (type + payload; the seq is the bridge's).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import Profile, get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard

from .broker import Broker
from .harness import make_settings, running_bridge, wait_until
from .mqtt_client import publish, publish_properties
from .recorder import Recorder

__all__ = ["KEEPALIVE", "Rig", "rig"]

KEEPALIVE = frozenset({PacketType.PING})
"""Keepalive PINGs: never part of what a test expects."""


@dataclass
class Rig:
    """A board on a pty, a running bridge and a recorder of everything under the base;
    `p` is the board's topic prefix `{base}/{dev}`."""

    broker: Broker
    base: str
    board: SimulatedBoard
    pty: PtyBoard
    bridge: Bridge
    rec: Recorder
    p: str
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def mark(self) -> int:
        return len(self.board.received)

    def sent(self, mark: int, skip: frozenset[int] = KEEPALIVE) -> list[tuple[int, bytes]]:
        """(type, payload) of the packets the board received since `mark`, without `skip`."""
        return [(p.type, p.payload) for p in self.board.received[mark:] if p.type not in skip]

    async def request(self, suffix: str, payload: bytes | str, **kw: Any) -> dict[str, Any]:
        """Publish on `{p}/{suffix}` with a Response Topic; return the JSON reply."""
        n = next(self._ids)
        reply_topic = f"{self.base}/reply/{n}"
        props = publish_properties(response_topic=reply_topic, correlation_data=f"c{n}".encode())
        await publish(self.broker, f"{self.p}/{suffix}", payload, properties=props, **kw)
        got = await self.rec.wait_for(reply_topic, timeout=5)
        assert got.correlation_data == f"c{n}".encode()
        doc: dict[str, Any] = got.json()
        return doc

    async def refused(self, suffix: str, payload: bytes | str) -> dict[str, Any]:
        """Publish a command that must fail; returns the report on `{p}/error` after
        checking the response-topic copy and that no packet reached the board."""
        mark = self.mark()
        before = len(self.rec.messages(f"{self.p}/error"))
        reply = await self.request(suffix, payload)
        assert reply["ok"] is False
        await wait_until(lambda: len(self.rec.messages(f"{self.p}/error")) > before)
        report: dict[str, Any] = self.rec.messages(f"{self.p}/error")[before].json()
        assert {**report, "ok": False} == reply
        assert report["topic"] == f"{self.p}/{suffix}"
        assert self.sent(mark) == [], "a refused command must not reach the board"
        return report


@contextlib.asynccontextmanager
async def rig(
    broker: Broker,
    base: str,
    tmp_path: Path,
    profile: str | Profile = "uno",
    dev: str | None = None,
    *,
    mqtt: dict[str, Any] | None = None,
    loop_rate_hz: float | None = None,
    **device: Any,
) -> AsyncIterator[Rig]:
    """Serve a `profile` board on a pty and run a bridge for it as device `dev` (default:
    the profile's name) under base topic `base`; `device` adds `[[devices]]` keys and `mqtt`
    `[mqtt]` keys; `loop_rate_hz` paces the board (`BoardRunner`). The keepalive is
    slowed to 30 s so PINGs do not clutter the packet log.
    Yields once the board is online."""
    spec = get_profile(profile) if isinstance(profile, str) else profile
    dev = dev or spec.name
    board = SimulatedBoard(spec, seed=3)
    async with PtyBoard(board, link=tmp_path / f"tty-{dev}", loop_rate_hz=loop_rate_hz) as pty:
        settings = make_settings(
            broker,
            base,
            [{"id": dev, "port": str(pty.link), "keepalive_s": 30, **device}],
            mqtt=mqtt,
        )
        p = f"{base}/{dev}"
        async with Recorder(broker, f"{base}/#") as rec, running_bridge(settings) as bridge:
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=10)
            yield Rig(broker, base, board, pty, bridge, rec, p)
