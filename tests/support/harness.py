"""Run a real Bridge against the test broker (helpers for end-to-end tests).

* :func:`make_settings` - bridge settings for a test: its own base topic and client id,
  fast keepalive and reconnects, HA discovery off unless asked for.
* :func:`running_bridge` - ``Bridge(settings).run()`` in-process for the ``async with``
  block, stopped cleanly (or failed loudly) at its end.
* :func:`wait_until` - poll a condition owned by another task.
* :func:`pty_board_at` - a seeded simulated board served on a real pty.
* :func:`spawn_cli` - the ``conduyt-bridge`` CLI in its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard

from .broker import Broker

__all__ = ["make_settings", "pty_board_at", "running_bridge", "spawn_cli", "wait_until"]


def make_settings(
    broker: Broker,
    base_topic: str,
    devices: list[dict[str, Any]],
    *,
    mqtt: dict[str, Any] | None = None,
    homeassistant: dict[str, Any] | None = None,
    **sections: Any,
) -> Settings:
    """Settings for a test bridge: its own base topic and client id, HA discovery off
    unless asked for, fast keepalive and reconnects so tests stay short."""
    device_defaults = {
        "keepalive_s": 0.5,
        "keepalive_misses": 2,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "hello_timeout_ms": 300,
        "command_timeout_ms": 500,
    }
    return Settings(
        bridge={"base_topic": base_topic, "log_level": "debug", **sections.pop("bridge", {})},
        mqtt={
            "url": broker.url,
            "client_id": f"bridge-{base_topic}",
            "reconnect_max_s": 0.5,
            **(mqtt or {}),
        },
        homeassistant={"enabled": False, **(homeassistant or {})},
        devices=[{**device_defaults, **d} for d in devices],
        **sections,
    )


@contextlib.asynccontextmanager
async def running_bridge(
    settings: Settings, connect_timeout_s: float = 10.0, *, config_path: Path | None = None
) -> AsyncIterator[Bridge]:
    """Start `Bridge(settings, config_path=…).run()` as a task; on exit stop it and wait
    for a clean end.

    Raises whatever `run()` raised, so a crash inside the bridge fails the test.
    """
    bridge = Bridge(settings, config_path=config_path)
    task = asyncio.create_task(bridge.run(), name="bridge-under-test")
    try:
        await asyncio.wait_for(bridge.mqtt.wait_connected(), connect_timeout_s)
        yield bridge
    finally:
        bridge.stop()
        done, _ = await asyncio.wait({task}, timeout=10)
        if not done:
            stacks = "\n".join(
                f"{t.get_name()}: {t.get_stack(limit=6)}" for t in asyncio.all_tasks()
            )
            print(f"tasks still running at shutdown:\n{stacks}")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise AssertionError("bridge did not shut down within 10 s")
        task.result()


async def wait_until(predicate: Any, timeout_s: float = 5.0, interval_s: float = 0.02) -> None:
    """Poll `predicate()` until it is true. Raises TimeoutError."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling state owned by another task
            await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def pty_board_at(link: Path, profile: str, seed: int) -> AsyncIterator[PtyBoard]:
    """A `SimulatedBoard` of `profile` (seeded) served on a real pty, symlinked at `link`."""
    board = SimulatedBoard(get_profile(profile), seed=seed)
    async with PtyBoard(board, link=link) as pb:
        yield pb


async def spawn_cli(config: Path) -> asyncio.subprocess.Process:
    """`python -m conduyt_bridge.app.cli --config CONFIG` in its own process, output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.app.cli",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
