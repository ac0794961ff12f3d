"""The measurements of `bench/hotpath.py` that run the bridge as it is deployed or under
a paced load: its config file (`bridge_toml`), a firehose board offered at a fixed
rate (`offered_rate_cost`), and the `/set` round trip against the shipped broker
configuration (`shipped_round_trip`)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import cpu_seconds, start_bridge, start_pty_board, stop_process
from support.broker import find_mosquitto, shipped_broker
from support.net import free_port

from conduyt_bridge.northbound.mqtt.connection import set_nodelay


def bridge_toml(
    url: str,
    base: str,
    devices: list[str],
    raw_mirror: bool = False,
    device: dict[str, float] | None = None,
    **mqtt: object,
) -> str:
    """A bridge config: `devices` are ports, ids d0, d1, ...; `device` extra numeric keys
    of each `[[devices]]`; `mqtt` extra [mqtt] keys."""
    extra = "".join(f'{k} = "{v}"\n' for k, v in mqtt.items())
    device_extra = "".join(f"{k} = {v}\n" for k, v in (device or {}).items())
    text = (
        f'[bridge]\nid = "bench"\nbase_topic = "{base}"\nlog_level = "warning"\n'
        "health_interval_s = 3600\n"
        f'[mqtt]\nurl = "{url}"\nclient_id = "bench-{base}"\n{extra}'
        "[homeassistant]\nenabled = false\n"
    )
    for i, port in enumerate(devices):
        text += (
            f'[[devices]]\nid = "d{i}"\nport = "{port}"\nkeepalive_s = 0\n'
            f"raw_mirror = {'true' if raw_mirror else 'false'}\n{device_extra}"
        )
    return text


async def scrape(port: int) -> dict[str, float]:
    """The bridge's `/metrics` samples that the offered-rate row reads, by name."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    body = (await reader.read()).decode()
    writer.close()
    wanted = {
        'conduyt_bridge_events_total{device="d0",type="DS_EVENT"}': "events",
        'conduyt_bridge_datastream_value{datastream="value",device="d0",unit=""}': "counter",
        "conduyt_bridge_mqtt_published_total": "published",
        "conduyt_bridge_mqtt_lost_bytes_total": "lost_bytes",
    }
    out: dict[str, float] = {}
    for line in body.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
    return out


async def offered_rate_cost(
    url: str, tmp: Path, seconds: float, repeat: int, rate: int, coalesce_ms: float
) -> tuple[float, float, float, float, float, float]:
    """A firehose board paced at `rate` DS_EVENTs/s (`simulate --rate`: 1 ms bursts, as a
    native-USB board's transfers): (µs bridge CPU per DS_EVENT, % of one core, DS_EVENTs/s
    through the bridge, events missed, events not published, QoS 0 bytes lost). Counted
    by the bridge itself (`/metrics`), with no subscriber, so broker and subscriber leave
    the board and bridge the machine's cores; medians of `repeat` windows, the counts
    over all of them. Missed: how far the firehose's counter (one per push) grew beyond
    the DS_EVENTs received; not published: DS_EVENTs received minus messages the broker
    accepted (one `ds/value` each; an outbox that coalesced or dropped one shows here)."""
    base = f"hot-{uuid.uuid4().hex[:6]}"
    link = tmp / f"ttyFR{uuid.uuid4().hex[:4]}"
    config = tmp / f"{base}.toml"
    http_port = free_port()
    text = bridge_toml(url, base, [str(link)], device={"read_coalesce_ms": coalesce_ms})
    config.write_text(
        text.replace(
            "[homeassistant]", f'[http]\nlisten = "127.0.0.1:{http_port}"\n[homeassistant]'
        )
    )
    sim = bridge = None
    try:
        sim = await start_pty_board("firehose", link, "--rate", str(rate))
        bridge = await start_bridge(config)
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(OSError):
                    if (await scrape(http_port)).get("events", 0) > 0:
                        break
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        costs: list[float] = []
        cores: list[float] = []
        rates: list[float] = []
        first = await scrape(http_port)
        for _ in range(repeat):
            m0, cpu0, t0 = await scrape(http_port), cpu_seconds(bridge.pid), time.perf_counter()
            await asyncio.sleep(seconds)
            m1, cpu1, t1 = await scrape(http_port), cpu_seconds(bridge.pid), time.perf_counter()
            events = m1["events"] - m0["events"]
            if events <= 0:
                raise SystemExit(f"no DS_EVENT went through in {seconds:g} s at {rate}/s")
            costs.append((cpu1 - cpu0) / events * 1e6)
            cores.append((cpu1 - cpu0) / (t1 - t0) * 100)
            rates.append(events / (t1 - t0))
        last = await scrape(http_port)
        received = last["events"] - first["events"]
        missed = (last["counter"] - first["counter"]) - received
        unpublished = received - (last["published"] - first["published"])
        lost_bytes = last["lost_bytes"] - first["lost_bytes"]
        return (
            statistics.median(costs),
            statistics.median(cores),
            statistics.median(rates),
            missed,
            unpublished,
            lost_bytes,
        )
    finally:
        if bridge is not None:
            await stop_process(bridge)
        if sim is not None:
            await stop_process(sim)


async def shipped_round_trip(tmp: Path, samples: int) -> list[float]:
    """Seconds from a `/set` to the new state, per sample, as deployed: the shipped
    `deploy/mosquitto` configuration and ACL with passwords, the bridge in its own process
    logged in as `conduyt-bridge`, a thermostat on a pty in its own process, and a client
    logged in as `homeassistant` (TCP_NODELAY, so it measures the bridge, not Nagle)."""
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("no mosquitto binary: apt-get install mosquitto")
    broker = shipped_broker(binary, ("conduyt-bridge", "homeassistant"))
    sim = bridge = None
    out: list[float] = []
    try:
        link = tmp / f"ttyRT{uuid.uuid4().hex[:4]}"
        password = tmp / "bridge-password"
        password.write_text("pw-conduyt-bridge\n")
        config = tmp / "round-trip.toml"
        config.write_text(
            '[bridge]\nid = "bench"\nlog_level = "warning"\nhealth_interval_s = 3600\n'
            f'[mqtt]\nurl = "{broker.url}"\nclient_id = "bench-rt"\n'
            f'username = "conduyt-bridge"\npassword_file = "{password}"\n'
            "[homeassistant]\nenabled = false\n"
            f'[[devices]]\nid = "th"\nport = "{link}"\n'
        )
        sim = await start_pty_board("thermostat", link)
        bridge = await start_bridge(config)
        async with aiomqtt.Client(
            broker.host,
            broker.port,
            username="homeassistant",
            password="pw-homeassistant",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as cli:
            set_nodelay(cli)
            state = "conduyt/th/ds/setpoint_celsius"
            await cli.subscribe(state, qos=1)
            await cli.subscribe("conduyt/th/status", qos=1)
            async with asyncio.timeout(30):
                async for m in cli.messages:
                    if m.topic.value.endswith("/status") and m.payload == b"online":
                        break
            await asyncio.sleep(1.0)  # past the first announcements
            for i in range(samples):
                value = f"{15 + (i % 200) / 10:.1f}".encode()
                t0 = time.perf_counter()
                await cli.publish(f"{state}/set", value, qos=1)
                async with asyncio.timeout(5):
                    async for m in cli.messages:
                        if m.topic.value == state and m.payload == value:
                            out.append(time.perf_counter() - t0)
                            break
        return out
    finally:
        if bridge is not None:
            await stop_process(bridge)
        if sim is not None:
            await stop_process(sim)
        broker.close()
