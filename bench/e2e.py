"""End-to-end throughput and latency of the bridge, against a real broker.

Prints, in one run:
  (a) bare aiomqtt publish rate to the broker: a publisher process (aiomqtt, QoS 0, the
      publish window the bridge uses for acknowledged messages) → broker → subscriber;
  (b) the bridge's end-to-end DS_EVENT rate: a simulated `firehose` board on a pty (its
      own process, pushing as fast as it can) → `conduyt-bridge` (its own process) →
      broker → the same subscriber;
  (c) their ratio (target ≥ 0.8) with the default configuration (raw mirror off: one
      publish per DS_EVENT, on `ds/{slug}`), and also with `raw_mirror = true` (every
      DS_EVENT raw on `evt/d1` too, i.e. two publishes per DS_EVENT);
  (d) p50/p99 latency of `/set` → state publish (thermostat setpoint, in-process bridge).

Each side runs in its own process, as in production, and both rates are measured at the
subscriber (paho, threaded, in this process), between its first and last message.
Broker: $MQTT_URL if set, else a private mosquitto on a free loopback port.
Usage: python bench/e2e.py [--seconds 5] [--messages 30000] [--samples 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import broker_from_env
from support.net import parse_mqtt_url

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.log import configure_logging
from conduyt_bridge.northbound.mqtt.connection import PUBLISH_WINDOW, set_nodelay


class Counter:
    """A paho subscriber on its own network thread that counts messages on one topic."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self._ready = threading.Event()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=0)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(5):
            raise RuntimeError("subscriber did not connect")

    def _on_message(self, *_: object) -> None:
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now

    def rate(self) -> float:
        """Messages/s between the first and the last message."""
        span = self.last - self.first
        return (self.count - 1) / span if self.count > 1 and span > 0 else 0.0

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


async def publisher(host: str, port: int, topic: str, n: int) -> None:
    """Publish n QoS 0 messages with aiomqtt, at most PUBLISH_WINDOW calls in flight."""
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
        pub.pending_calls_threshold = PUBLISH_WINDOW * 4
        window = asyncio.Semaphore(PUBLISH_WINDOW)

        async def one(i: int) -> None:
            try:
                await pub.publish(topic, str(21.5 + i % 100).encode(), qos=0)
            finally:
                window.release()

        async with asyncio.TaskGroup() as tg:
            for i in range(n):
                await window.acquire()
                tg.create_task(one(i))


async def bare_rate(host: str, port: int, n: int) -> float:
    topic = f"bench/{uuid.uuid4().hex[:8]}/bare"
    counter = Counter(host, port, topic)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--publisher", host, str(port), topic, str(n)
        )
        await asyncio.wait_for(proc.wait(), 120)
        await asyncio.sleep(1.0)  # let the tail arrive
        return counter.rate()
    finally:
        counter.close()


async def bridge_rate(
    url: str,
    host: str,
    port: int,
    seconds: float,
    tmp: Path,
    repeat: int = 3,
    raw_mirror: bool = False,
) -> tuple[float, int]:
    """(state messages/s at the subscriber, count) for a firehose board behind the bridge:
    the median of `repeat` windows of `seconds` each."""
    base = f"bench-{uuid.uuid4().hex[:6]}"
    link = tmp / f"ttyFIREHOSE{uuid.uuid4().hex[:4]}"
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "conduyt_bridge.app.cli",
        "simulate",
        "firehose",
        "--pty",
        "--link",
        str(link),
        stdout=asyncio.subprocess.PIPE,
    )
    assert sim.stdout is not None
    await asyncio.wait_for(sim.stdout.readline(), 10)
    config = tmp / "bench.toml"
    config.write_text(
        f'[bridge]\nbase_topic = "{base}"\nlog_level = "warning"\nhealth_interval_s = 3600\n'
        f'[mqtt]\nurl = "{url}"\nclient_id = "bench-{base}"\n'
        "[homeassistant]\nenabled = false\n"
        f'[[devices]]\nid = "fh"\nport = "{link}"\nkeepalive_s = 0\n'
        f"raw_mirror = {'true' if raw_mirror else 'false'}\n"
    )
    counter = Counter(host, port, f"{base}/fh/ds/value")
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conduyt_bridge.app.cli", "--config", str(config)
    )
    try:
        async with asyncio.timeout(30):
            while counter.count == 0:  # noqa: ASYNC110 - the counter lives on paho's thread
                await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # past the start-up transient
        rates: list[tuple[float, int]] = []
        for _ in range(repeat):
            start_count, start = counter.count, time.perf_counter()
            await asyncio.sleep(seconds)
            count = counter.count - start_count
            rates.append((count / (time.perf_counter() - start), count))
        return statistics.median_high(rates)
    finally:
        bridge.terminate()
        await bridge.wait()
        sim.terminate()
        await sim.wait()
        counter.close()


async def set_latency(url: str, host: str, port: int, samples: int) -> list[float]:
    """Seconds from publishing `/set` to receiving the new state, per sample."""
    base = f"bench-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        bridge={"base_topic": base, "log_level": "warning", "health_interval_s": 3600},
        mqtt={"url": url, "client_id": f"bench-{base}"},
        homeassistant={"enabled": False},
        devices=[{"id": "th", "port": "sim://thermostat"}],
    )
    bridge = Bridge(settings)
    run = asyncio.create_task(bridge.run())
    out: list[float] = []
    try:
        async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5) as cli:
            set_nodelay(cli)  # measure the bridge, not this client's Nagle delay
            state = f"{base}/th/ds/setpoint_celsius"
            await cli.subscribe(state, qos=1)
            await cli.subscribe(f"{base}/th/status", qos=1)
            async for m in cli.messages:
                if m.topic.value.endswith("/status") and m.payload == b"online":
                    break
            for i in range(samples):
                value = f"{15 + (i % 200) / 10:.1f}".encode()
                t0 = time.perf_counter()
                await cli.publish(f"{state}/set", value, qos=1)
                async for m in cli.messages:
                    if m.topic.value == state and m.payload == value:
                        out.append(time.perf_counter() - t0)
                        break
    finally:
        bridge.stop()
        await asyncio.wait_for(run, 15)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--messages", type=int, default=30000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="runs per rate; the median is shown")
    args = parser.parse_args()
    configure_logging("warning")

    broker, url = broker_from_env()
    host, port = parse_mqtt_url(url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bare = statistics.median(
                [await bare_rate(host, port, args.messages) for _ in range(args.repeat)]
            )
            bridged, count = await bridge_rate(
                url, host, port, args.seconds, Path(tmp), args.repeat
            )
            mirrored, _ = await bridge_rate(
                url, host, port, args.seconds, Path(tmp), args.repeat, raw_mirror=True
            )
            lat = await set_latency(url, host, port, args.samples)
    finally:
        if broker is not None:
            broker.close()
    print(f"broker: {url}  cpu cores: {os.cpu_count()}")
    print(
        f"(a) bare aiomqtt publish rate      : {bare:9.0f} msg/s  (median of {args.repeat} x "
        f"{args.messages} msgs, QoS 0)"
    )
    print(
        f"(b) bridge end-to-end DS_EVENT rate: {bridged:9.0f} msg/s  ({count} msgs in "
        f"{args.seconds:g} s, median of {args.repeat} windows, firehose board on a pty, "
        "raw mirror off)"
    )
    print(f"(c) ratio bridge / bare            : {bridged / bare:9.2f}")
    print(
        f"    same with raw_mirror = true     : {mirrored:9.0f} msg/s, "
        f"ratio {mirrored / bare:.2f} (raw evt/d1 mirror: two publishes per DS_EVENT)"
    )
    print(
        f"(d) /set -> state latency          : p50 {pct(lat, 0.5) * 1000:.2f} ms, "
        f"p99 {pct(lat, 0.99) * 1000:.2f} ms, mean {statistics.mean(lat) * 1000:.2f} ms "
        f"({len(lat)} samples)"
    )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--publisher":
        _, _, h, p, t, n = sys.argv
        asyncio.run(publisher(h, int(p), t, int(n)))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
