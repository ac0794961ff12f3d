"""Supervision: a crashing job or hook never stops the bridge."""

from __future__ import annotations

import asyncio

import pytest
from support.broker import Broker
from support.harness import make_settings, wait_until
from support.recorder import Recorder

import conduyt_bridge.app.daemon as app
from conduyt_bridge.core.events import BoardEvent, BoardOnline


async def test_supervise_restarts_a_crashed_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "RESTART_DELAY_S", 0.01)
    runs: list[int] = []
    done = asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("a bug")
        if len(runs) == 2:
            return  # an unexpected return is restarted too
        done.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(app.supervise("job", job))
    await asyncio.wait_for(done.wait(), 2)
    task.cancel()
    assert runs == [0, 1, 2]


async def test_a_failing_online_hook_drops_the_link_and_recovers(
    mqtt_broker: Broker, base_topic: str
) -> None:
    settings = make_settings(mqtt_broker, base_topic, [{"id": "s", "port": "sim://thermostat"}])
    failures = []

    async def flaky(event: BoardEvent) -> None:
        if isinstance(event, BoardOnline) and not failures:
            failures.append(1)
            raise ValueError("hook bug")

    p = f"{base_topic}/s"
    async with Recorder(mqtt_broker, f"{p}/status") as rec:
        bridge = app.Bridge(settings)
        bridge.bus.subscribe(flaky, first=True)
        task = asyncio.create_task(bridge.run())
        try:
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=10)
            assert failures == [1]
            assert "internal error" in (bridge.sessions["s"].last_error or "")
            await wait_until(lambda: bridge.sessions["s"].online)
        finally:
            bridge.stop()
            await asyncio.wait_for(task, 10)
