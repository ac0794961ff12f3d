"""Hot-path cost of the bridge: CPU per message next to a bare MQTT client, in one run.

What it measures (all in this one run, against the same private broker, because these
machines are shared and noisy and only a side-by-side number means something):
  bare paho     : a paho-mqtt 2.x client in its own process publishing QoS 0 in a tight
                  loop; its CPU (utime+stime of /proc/self/stat) per message, µs/msg;
  bridge        : a `firehose` board on a pty (its own process, pushing as fast as it can)
                  -> `conduyt-bridge` (its own process) -> broker -> a paho subscriber here.
                  CPU of the whole bridge process (utime+stime of /proc/PID/stat, all its
                  threads; nothing subtracted: serial reading, decoding, MQTT publishing,
                  logging, timers) divided by the DS_EVENTs delivered on `ds/value` at the
                  subscriber in the same window, µs/event. With `raw_mirror = true` each
                  DS_EVENT is published twice (`ds/value` and raw on `evt/d1`) but counted once.
                  Configurations: default (MQTT 5, plain), MQTT 3.1.1, JSON payloads, raw mirror,
                  and read coalescing off (`read_coalesce_ms = 0`: every read at once);
  ratio         : bridge µs/event / bare µs/msg (how many bare publishes one event costs);
  events/s      : DS_EVENTs/s at the subscriber (the firehose is limited by the bridge, so
                  this is the bridge's end-to-end throughput on this machine);
  offered rate  : a firehose paced at `--rate` events/s (`simulate --rate`: 1 ms bursts, as a
                  native-USB board's transfers) with no subscriber; the bridge counts what
                  went through on its own `/metrics` (DS_EVENTs; events missed, by the
                  firehose's counter, events not published and QoS 0 bytes lost must
                  stay 0);
                  µs/event and % of one core, coalescing on and off. The simulator in its
                  own process pushes ~97 % of a 66k rate here: when its loop is held up
                  over 50 ms (the 2 cores are shared), it skips those ticks rather than
                  burst them, as a board blocked on a full USB buffer would;
  RSS           : VmRSS of the bridge process with 1/32/128 boards (`--boards`); these are
                  in-process simulated boards (`sim://thermostat`), not ptys, once all are
                  online plus a short settle;
  idle CPU      : N boards on ptys (their own processes) pushing 1 event/s (a firehose
                  with `--push-interval 1`), and N thermostats (two datastreams pushed
                  once a second), bridge CPU over `--idle-seconds` / N,
                  as % of one core per board (utime+stime count in clock ticks: one tick
                  is 1 / (CLK_TCK x seconds x N) of a core, printed as the resolution);
  round trip    : `/set` -> state publish latency p50/p99 (thermostat setpoint) as deployed:
                  the shipped deploy/mosquitto conf + ACL with passwords, the bridge and a
                  pty thermostat each in its own process, the client as `homeassistant`.

Every CPU/rate figure is the median of `--repeat` windows of `--seconds`. Everything is on
loopback; broker is $MQTT_URL if set, else a private mosquitto.

How to read it, against the targets of the hot-path issue: the ratio column at most 1.0 (a
DS_EVENT costs the bridge no more CPU than one bare paho QoS 0 publish); RSS at most 60 MB
with 32 boards and 75 MB with 128; idle CPU at most 0.05 % of a core per pty board at one
event/s; `/set` round trip p50 at most 2 ms and p99 at most 5 ms. Compare the ratio, not
the absolute µs, between machines.

Usage: python bench/hotpath.py [--seconds 5] [--repeat 3] [--samples 200]
       [--boards 1,32,128] [--idle-boards 16] [--idle-seconds 20] [--rate 66000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import (
    CLK_TCK,
    broker_from_env,
    cpu_seconds,
    rss_kib,
    start_bridge,
    start_pty_board,
    stop_process,
)
from _measures import bridge_toml, offered_rate_cost, shipped_round_trip
from e2e import Counter, pct
from support.net import parse_mqtt_url

from conduyt_bridge.app.log import configure_logging

CONFIGS: dict[str, dict[str, object]] = {
    "default (MQTT 5, plain)": {},
    "MQTT 3.1.1": {"protocol": "3.1.1"},
    "JSON payloads": {"payload_format": "json"},
    "raw_mirror = true": {"raw_mirror": True},
    "read_coalesce_ms = 0": {"device": {"read_coalesce_ms": 0}},
}


def paho_publisher(host: str, port: int, topic: str, n: int) -> None:
    """Child process: publish n QoS 0 messages with paho (no network thread: publish()
    writes to the socket itself); print CPU seconds of this process spent doing so."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(host, port)
    deadline = time.monotonic() + 10
    while not client.is_connected():
        client.loop(0.1)
        if time.monotonic() > deadline:
            raise SystemExit("paho publisher did not connect")
    payloads = [str(21.5 + i % 100).encode() for i in range(100)]
    cpu0 = cpu_seconds()
    for i in range(n):
        client.publish(topic, payloads[i % 100], qos=0)
        if i % 256 == 0:
            client.loop(0)  # read anything the broker sent, flush what is queued
    while client.want_write():
        client.loop(0.01)
    cpu = cpu_seconds() - cpu0
    client.disconnect()
    print(f"{cpu:.6f}", flush=True)


async def bare_paho(host: str, port: int, n: int) -> tuple[float, float]:
    """(µs CPU per message in the publisher, messages/s at the subscriber)."""
    topic = f"bench/{uuid.uuid4().hex[:8]}/bare"
    counter = Counter(host, port, topic)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--paho-publisher",
            host,
            str(port),
            topic,
            str(n),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
        finally:
            await stop_process(proc)
        await asyncio.sleep(0.5)  # let the tail arrive
        return float(out) / n * 1e6, counter.rate()
    finally:
        counter.close()


async def wait_count(counter: Counter, n: int, timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while counter.count < n:  # noqa: ASYNC110 - the counter lives on paho's thread
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise SystemExit(f"timed out waiting for {what} ({counter.count}/{n})") from None


async def bridge_cost(
    url: str, host: str, port: int, tmp: Path, seconds: float, repeat: int, options: dict
) -> tuple[float, float]:
    """(µs bridge CPU per DS_EVENT at the subscriber, events/s): medians of `repeat` windows."""
    options = dict(options)
    raw_mirror = bool(options.pop("raw_mirror", False))
    device = options.pop("device", None)
    base = f"hot-{uuid.uuid4().hex[:6]}"
    link = tmp / f"ttyFH{uuid.uuid4().hex[:4]}"
    config = tmp / f"{base}.toml"
    config.write_text(bridge_toml(url, base, [str(link)], raw_mirror, device, **options))
    counter = Counter(host, port, f"{base}/d0/ds/value")
    sim = bridge = None
    try:
        sim = await start_pty_board("firehose", link)
        bridge = await start_bridge(config)
        await wait_count(counter, 1, 30, "the first firehose event")
        await asyncio.sleep(1.0)  # past the start-up transient
        costs: list[float] = []
        rates: list[float] = []
        for _ in range(repeat):
            c0, cpu0, t0 = counter.count, cpu_seconds(bridge.pid), time.perf_counter()
            await asyncio.sleep(seconds)
            c1, cpu1, t1 = counter.count, cpu_seconds(bridge.pid), time.perf_counter()
            if c1 > c0:
                costs.append((cpu1 - cpu0) / (c1 - c0) * 1e6)
            rates.append((c1 - c0) / (t1 - t0))
        if not costs:
            raise SystemExit("no events delivered in the measuring windows")
        return statistics.median(costs), statistics.median(rates)
    finally:
        if bridge is not None:
            await stop_process(bridge)
        if sim is not None:
            await stop_process(sim)
        counter.close()


async def rss_with(url: str, host: str, port: int, tmp: Path, boards: int) -> float:
    """MiB VmRSS of the bridge with `boards` in-process `sim://thermostat` boards online."""
    base = f"hot-{uuid.uuid4().hex[:6]}"
    config = tmp / f"{base}.toml"
    config.write_text(bridge_toml(url, base, ["sim://thermostat"] * boards))
    counter = Counter(host, port, f"{base}/+/status")
    bridge = None
    try:
        bridge = await start_bridge(config)
        await wait_count(counter, boards, 60, f"{boards} boards online")
        await asyncio.sleep(2.0)
        return rss_kib(bridge.pid) / 1024
    finally:
        if bridge is not None:
            await stop_process(bridge)
        counter.close()


async def idle_cpu(
    url: str, host: str, port: int, tmp: Path, boards: int, seconds: float, *simulate: str
) -> float:
    """% of one core the bridge uses per pty board, over `seconds`; `simulate` is the
    profile and options of `conduyt-bridge simulate` (default: a thermostat)."""
    base = f"hot-{uuid.uuid4().hex[:6]}"
    links = [tmp / f"ttyTH{uuid.uuid4().hex[:4]}" for _ in range(boards)]
    config = tmp / f"{base}.toml"
    config.write_text(bridge_toml(url, base, [str(link) for link in links]))
    counter = Counter(host, port, f"{base}/+/status")
    sims: list[asyncio.subprocess.Process] = []
    bridge = None
    try:
        for link in links:
            profile, *options = simulate or ("thermostat",)
            sims.append(await start_pty_board(profile, link, *options))
        bridge = await start_bridge(config)
        await wait_count(counter, boards, 60, f"{boards} pty boards online")
        await asyncio.sleep(2.0)
        cpu0, t0 = cpu_seconds(bridge.pid), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu1, t1 = cpu_seconds(bridge.pid), time.perf_counter()
        return (cpu1 - cpu0) / (t1 - t0) / boards * 100
    finally:
        if bridge is not None:
            await stop_process(bridge)
        for sim in sims:
            await stop_process(sim)
        counter.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each measuring window")
    parser.add_argument("--repeat", type=int, default=3, help="windows; the median is shown")
    parser.add_argument("--samples", type=int, default=200, help="/set round trips")
    parser.add_argument("--boards", default="1,32,128", help="RSS points (sim boards)")
    parser.add_argument("--messages", type=int, default=100_000, help="bare paho, per repeat")
    parser.add_argument("--idle-boards", type=int, default=16, help="thermostat pty boards")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--rate", type=int, default=66_000, help="offered DS_EVENTs/s (native-USB board)"
    )
    parser.add_argument("--quick", action="store_true", help="short run: 1 s windows, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeat, args.samples = 1.0, 1, 50
        args.messages, args.idle_boards, args.idle_seconds = 20_000, 2, 3.0
        args.boards = "1,8"
    boards = [int(b) for b in args.boards.split(",") if b]
    configure_logging("warning")

    rows: list[tuple[str, str, str, str]] = []
    broker, url = broker_from_env()
    host, port = parse_mqtt_url(url)
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            runs = [await bare_paho(host, port, args.messages) for _ in range(args.repeat)]
            bare_us = statistics.median(r[0] for r in runs)
            bare_rate = statistics.median(r[1] for r in runs)
            rows.append(
                (
                    "bare paho publish (QoS 0)",
                    f"{bare_us:8.2f} µs/msg",
                    "1.00",
                    f"{bare_rate:9.0f} msg/s",
                )
            )
            for name, options in CONFIGS.items():
                us, rate = await bridge_cost(
                    url, host, port, tmp, args.seconds, args.repeat, options
                )
                rows.append(
                    (
                        f"bridge, {name}",
                        f"{us:8.2f} µs/event",
                        f"{us / bare_us:.2f}",
                        f"{rate:9.0f} ev/s",
                    )
                )
            for coalesce_ms in (1.0, 0.0):
                us, core, rate, missed, unpublished, lost = await offered_rate_cost(
                    url, tmp, args.seconds, args.repeat, args.rate, coalesce_ms
                )
                rows.append(
                    (
                        f"bridge at {args.rate} ev/s offered, read_coalesce_ms = {coalesce_ms:g}",
                        f"{us:8.2f} µs/event",
                        f"{us / bare_us:.2f}",
                        f"{rate:9.0f} ev/s, {core:4.1f} % core, {missed:g} missed, "
                        f"{unpublished:g} unpublished, {lost:g} bytes lost",
                    )
                )
            for n in boards:
                mib = await rss_with(url, host, port, tmp, n)
                rows.append((f"bridge RSS, {n} sim boards", f"{mib:8.1f} MiB", "", ""))
            resolution = 100 / (CLK_TCK * args.idle_seconds * args.idle_boards)
            for what, simulate in (
                ("1 event/s", ("firehose", "--push-interval", "1")),
                ("thermostat, 2 events/s", ("thermostat",)),
            ):
                idle = await idle_cpu(
                    url, host, port, tmp, args.idle_boards, args.idle_seconds, *simulate
                )
                rows.append(
                    (
                        f"idle CPU per pty board, {what} ({args.idle_boards} boards)",
                        f"{idle:8.3f} % core",
                        "",
                        f"± {resolution:.3f} (one clock tick)",
                    )
                )
            lat = await shipped_round_trip(tmp, args.samples)
            rows.append(("/set round trip p50", f"{pct(lat, 0.5) * 1000:8.2f} ms", "", ""))
            rows.append(("/set round trip p99", f"{pct(lat, 0.99) * 1000:8.2f} ms", "", ""))
    finally:
        if broker is not None:
            broker.close()

    print(
        f"broker: {url}  cpu cores: {os.cpu_count()}  windows: {args.repeat} x "
        f"{args.seconds:g} s (median)  bare: {args.messages} msgs x {args.repeat}"
    )
    header = ("measurement", "CPU / value", "ratio", "at subscriber")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(
        "bridge CPU = utime+stime of the whole bridge process (all threads, nothing "
        "subtracted) / DS_EVENTs received on ds/value; raw_mirror publishes 2 per event.\n"
        "RSS uses in-process sim://thermostat boards; idle CPU uses boards on ptys "
        f"over {args.idle_seconds:g} s; round trip: /set -> state, shipped mosquitto.conf, "
        "bridge and pty board in their own processes, "
        f"{len(lat)} samples."
    )


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--paho-publisher":
        _, _, h, p, t, n = sys.argv
        paho_publisher(h, int(p), t, int(n))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
