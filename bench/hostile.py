"""Bridge memory under a flood of hostile MQTT input (issue 8, docs/hostile-input.md).

Starts a private mosquitto (unless $MQTT_URL is set) and `conduyt-bridge` in its own
process with one simulated board (`sim://kitchen`, max_payload 512, so commands are at
most 4096 bytes), then publishes `--messages` hostile messages on the board's command
topics: deeply nested JSON, invalid UTF-8, binary junk and text, of sizes drawn from
16 B to 1 MiB (1 % at 1 MiB, 10 % from 32 KiB to 256 KiB, the rest under 8 KiB). Prints
the bridge's RSS (VmRSS of /proc/PID/status) before, at its peak during, and after the
flood, the error reports counted on `{dev}/error`, the inbound drops reported in
`bridge/{id}/health`, whether a valid `/set` still works afterwards, and the RSS after a
second flood of `--again` messages (it must not grow again).

Target (issue 8): peak and after ≤ start + 40 MB, after back near the start.
Usage: python bench/hostile.py [--messages 50000] [--again 20000] [--seed 8] [--settle 10]
       [--max-size 1048576]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import broker_from_env
from support.net import parse_mqtt_url

SUFFIXES = (
    "ds/light_percent/set",
    "ds/door_open/set",
    "pin/2/set",
    "pin/2/mode/set",
    "pin/2/subscribe/set",
    "module/servo/write",
    "cmd",
    "cmd/02",
    "ds/nope/set",
)

BRIDGE_ID = "bench"
"""The bench bridge's `[bridge] id`: its health is on `{base}/bridge/bench/health`."""

PUBLISH_WINDOW = 64
"""QoS 1 publishes in flight from the flooding client."""

MIB = 1024 * 1024


def rss_kib(pid: int) -> int:
    """VmRSS of process `pid`, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def size_for(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.01:
        return MIB
    if roll < 0.11:
        return rng.randint(32 * 1024, 256 * 1024)
    return int(2 ** rng.uniform(4, 13))  # 16 B .. 8 KiB


def hostile_payloads(n: int, seed: int, max_size: int = MIB) -> Iterator[tuple[str, bytes]]:
    """`n` (topic suffix, payload) pairs, deterministic for `seed`, none over `max_size`."""
    rng = random.Random(seed)
    junk = rng.randbytes(MIB)
    for i in range(n):
        size = min(size_for(rng), max_size)
        kind = i % 5
        if kind == 0:
            payload = b"[" * size
        elif kind == 1:
            payload = b'{"value": ' * (size // 10 + 1)
        elif kind == 2:
            payload = b"\xff\xfe" + junk[: max(0, size - 2)]  # never valid UTF-8
        elif kind == 3:
            start = rng.randrange(0, MIB - size + 1)
            payload = junk[start : start + size]
        else:
            payload = b"x" * size
        yield SUFFIXES[i % len(SUFFIXES)], payload


class Watcher:
    """A paho subscriber (own thread): counts error reports, keeps the newest health."""

    def __init__(self, host: str, port: int, base: str, dev: str) -> None:
        self.errors = 0
        self.last_error_at = 0.0
        self.health: dict[str, object] = {}
        self.status = b""
        health = f"{base}/bridge/{BRIDGE_ID}/health"
        self._topics = (f"{base}/{dev}/error", health, f"{base}/{dev}/status")
        self._ready = threading.Event()
        api = paho.CallbackAPIVersion.VERSION2  # type: ignore[attr-defined]
        self._client = paho.Client(api, protocol=paho.MQTTv5)
        self._client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in self._topics])
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscriber did not connect")

    def _on_message(self, _client: object, _userdata: object, msg: paho.MQTTMessage) -> None:
        if msg.topic == self._topics[0]:
            self.errors += 1
            self.last_error_at = time.monotonic()
        elif msg.topic == self._topics[1]:
            self.health = json.loads(msg.payload)
        else:
            self.status = bytes(msg.payload)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


class RssSampler:
    """Samples a process's RSS every `interval_s` in a thread; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def valid_set(host: str, port: int, prefix: str, value: int) -> dict[str, object]:
    """Publish a valid `/set` with a response topic; return the bridge's answer."""
    reply = f"{prefix}/bench-reply/{uuid.uuid4().hex[:6]}"
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(reply, qos=1)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = reply
        props.CorrelationData = b"bench"
        await client.publish(f"{prefix}/ds/light_percent/set", str(value), qos=1, properties=props)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                doc: dict[str, object] = json.loads(message.payload)
                return doc
    raise RuntimeError("no reply")


async def flood(
    host: str, port: int, prefix: str, n: int, seed: int, max_size: int
) -> tuple[int, float]:
    """Publish the hostile messages (QoS 1, a window in flight); (bytes sent, seconds)."""
    sent = 0
    window = asyncio.Semaphore(PUBLISH_WINDOW)
    started = time.perf_counter()
    client = aiomqtt.Client(host, port, max_inflight_messages=PUBLISH_WINDOW)
    client.pending_calls_threshold = PUBLISH_WINDOW * 2
    async with client, asyncio.TaskGroup() as tg:
        for suffix, payload in hostile_payloads(n, seed, max_size):
            await window.acquire()
            sent += len(payload)
            task = tg.create_task(client.publish(f"{prefix}/{suffix}", payload, qos=1))
            task.add_done_callback(lambda _t: window.release())
    return sent, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument(
        "--again", type=int, default=20_000, help="messages of a second flood (0: none)"
    )
    parser.add_argument("--max-size", type=int, default=MIB, help="largest payload, bytes")
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds of quiet before the 'after' RSS"
    )
    args = parser.parse_args()

    broker, url = broker_from_env()
    host, port = parse_mqtt_url(url)
    base = f"hostile-{uuid.uuid4().hex[:6]}"
    dev = "kitchen"
    prefix = f"{base}/{dev}"
    watcher = Watcher(host, port, base, dev)
    proc: asyncio.subprocess.Process | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "hostile.toml"
            config.write_text(
                f'[bridge]\nid = "{BRIDGE_ID}"\nbase_topic = "{base}"\nlog_level = "warning"\n'
                "health_interval_s = 1\n"
                f'[mqtt]\nurl = "{url}"\nclient_id = "bench-{base}"\n'
                "[homeassistant]\nenabled = false\n"
                f'[[devices]]\nid = "{dev}"\nport = "sim://kitchen"\n'
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "conduyt_bridge.app.cli", "--config", str(config)
            )
            await wait_for(lambda: watcher.status == b"online", 30, "the board online")
            for value in range(5):  # warm up the command path before measuring
                await valid_set(host, port, prefix, value)
            await asyncio.sleep(2.0)
            before = rss_kib(proc.pid)
            sampler = RssSampler(proc.pid)
            sent, seconds = await flood(host, port, prefix, args.messages, args.seed, args.max_size)
            flood_end = rss_kib(proc.pid)

            def settled() -> bool:
                return time.monotonic() - watcher.last_error_at > 2.0

            await wait_for(settled, 120, "the error reports to stop")
            peak = max(sampler.stop(), flood_end)
            answer = await valid_set(host, port, prefix, 77)
            await asyncio.sleep(args.settle)
            after = rss_kib(proc.pid)
            await asyncio.sleep(1.5)  # one more health document
            health = watcher.health
            again = 0
            if args.again:
                # The same flood once more (other seed): the bridge must not grow again.
                await flood(host, port, prefix, args.again, args.seed + 1, args.max_size)
                await wait_for(settled, 120, "the error reports to stop")
                await asyncio.sleep(args.settle)
                again = rss_kib(proc.pid)
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            await proc.wait()
        watcher.close()
        if broker is not None:
            broker.close()
    broker_doc = health.get("broker", {})
    dropped = broker_doc.get("inbound_dropped") if isinstance(broker_doc, dict) else None
    print(f"broker: {url}  cpu cores: {os.cpu_count()}")
    print(
        f"flood: {args.messages} hostile messages, {sent / MIB:.1f} MiB in {seconds:.1f} s "
        f"(seed {args.seed}, QoS 1, {PUBLISH_WINDOW} in flight)"
    )
    print(f"bridge RSS before : {before / 1024:7.1f} MiB")
    print(f"bridge RSS peak   : {peak / 1024:7.1f} MiB  (+{(peak - before) / 1024:.1f} MiB)")
    print(
        f"bridge RSS after  : {after / 1024:7.1f} MiB  (+{(after - before) / 1024:.1f} MiB, "
        f"{args.settle:g} s after the last error report)"
    )
    if args.again:
        print(
            f"bridge RSS after {args.again} more: {again / 1024:7.1f} MiB  "
            f"(+{(again - before) / 1024:.1f} MiB)"
        )
    print(f"error reports on {prefix}/error: {watcher.errors} (both floods)")
    depth = broker_doc.get("queue_depth") if isinstance(broker_doc, dict) else None
    outbox_dropped = broker_doc.get("dropped") if isinstance(broker_doc, dict) else None
    print(
        f"inbound messages dropped (health): {dropped}; outbox depth after: {depth}, "
        f"outbox dropped: {outbox_dropped}"
    )
    print(f"valid /set after the flood: {answer}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
