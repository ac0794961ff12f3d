"""Helpers the bench scripts share (`bench/e2e.py`, `bench/hostile.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.broker import MosquittoProcess, find_mosquitto


def broker_from_env() -> tuple[MosquittoProcess | None, str]:
    """The broker to measure against: $MQTT_URL if set (then no process of ours, `None`),
    else a private mosquitto, started here; the caller closes it. Exits if there is none."""
    broker: MosquittoProcess | None = None
    url = os.environ.get("MQTT_URL")
    if not url:
        binary = find_mosquitto()
        if binary is None:
            raise SystemExit("no MQTT_URL and no mosquitto binary: apt-get install mosquitto")
        broker = MosquittoProcess(binary)
        broker.start()
        url = broker.url
    return broker, url


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of process `pid` (all its threads) from /proc/PID/stat, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def rss_kib(pid: int) -> int:
    """VmRSS of process `pid`, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def start_pty_board(profile: str, link: Path, *extra: str) -> asyncio.subprocess.Process:
    """`conduyt-bridge simulate PROFILE --pty --link LINK` in its own process; returns once
    the pty exists (the simulator printed its path). The caller stops it (`stop_process`)."""
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.app.cli",
        "simulate",
        profile,
        "--pty",
        "--link",
        str(link),
        *extra,
        stdout=asyncio.subprocess.PIPE,
    )
    assert sim.stdout is not None
    try:
        await asyncio.wait_for(sim.stdout.readline(), 10)
    except BaseException:
        await stop_process(sim)
        raise
    return sim


async def start_bridge(config: Path) -> asyncio.subprocess.Process:
    """`python -m conduyt_bridge.app.cli --config CONFIG` in its own process."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conduyt_bridge.app.cli", "--config", str(config)
    )


async def stop_process(proc: asyncio.subprocess.Process, timeout_s: float = 10.0) -> None:
    """SIGTERM `proc`, SIGKILL it after `timeout_s`, and reap it."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
