"""Supervision: a crashing job or hook never stops the bridge."""

from __future__ import annotations

import asyncio

import pytest
from bridge_harness import make_settings, wait_until
from mqtt_helpers import Broker, Recorder

import conduyt_bridge.app.daemon as app
from conduyt_bridge.northbound.conduyt.board import BoardBridge
from conduyt_bridge.protocol.hello import HelloResp


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

    async def flaky(board: BoardBridge, hello: HelloResp, changed: bool) -> None:
        if not failures:
            failures.append(1)
            raise ValueError("hook bug")

    p = f"{base_topic}/s"
    async with Recorder(mqtt_broker, f"{p}/status") as rec:
        bridge = app.Bridge(settings)
        bridge.boards["s"].change_hooks.insert(0, flaky)
        task = asyncio.create_task(bridge.run())
        try:
            await rec.wait_for(f"{p}/status", payload=b"online", timeout=10)
            assert failures == [1]
            assert "internal error" in (bridge.sessions["s"].last_error or "")
            await wait_until(lambda: bridge.sessions["s"].online)
        finally:
            bridge.stop()
            await asyncio.wait_for(task, 10)
