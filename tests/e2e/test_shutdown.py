"""Stopping the bridge and its broker at the same moment (`docker compose down`, a host
shutdown): the bridge must exit 0 within 2 s with no error-level log line, although the
broker it would publish its `offline` states to is gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from support.broker import MosquittoProcess, find_mosquitto
from support.harness import spawn_cli
from support.recorder import Recorder

STOP_WITHIN_S = 2.0


@pytest.fixture
def own_broker() -> MosquittoProcess:
    """A private broker: this test kills it."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("needs the mosquitto binary")
    broker = MosquittoProcess(binary)
    broker.start()
    return broker


@pytest.mark.parametrize("homeassistant", [True, False])
async def test_sigterm_to_bridge_and_broker_at_once(
    own_broker: MosquittoProcess, tmp_path: Path, homeassistant: bool
) -> None:
    broker = own_broker
    config = tmp_path / "run.toml"
    config.write_text(
        '[bridge]\nbase_topic = "down"\nlog_format = "json"\n'
        f'[mqtt]\nurl = "{broker.url}"\nclient_id = "down-test"\n'
        f"[homeassistant]\nenabled = {'true' if homeassistant else 'false'}\n"
        '[[devices]]\nid = "sim1"\nport = "sim://thermostat"\n'
    )
    proc = await spawn_cli(config)
    try:
        async with Recorder(broker, "down/#") as rec:
            await rec.wait_for("down/sim1/status", payload=b"online", timeout=15)
            await rec.wait_for("down/sim1/ds/temperature_celsius", timeout=5)
        broker_pid = broker.pid
        assert broker_pid is not None
        started = time.monotonic()
        os.kill(broker_pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
        elapsed = time.monotonic() - started
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        broker.close()
    lines = [json.loads(line) for line in (stdout + stderr).decode().splitlines() if line]
    errors = [line for line in lines if line.get("level") in ("error", "critical")]
    assert (proc.returncode, errors) == (0, [])
    assert lines[-1]["event"] == "conduyt-bridge stopped"
    assert elapsed < STOP_WITHIN_S, f"took {elapsed:.2f} s"
