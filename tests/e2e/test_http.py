"""The HTTP endpoint (`conduyt_bridge/app/http.py`, `conduyt_bridge/app/metrics.py`) and
`--health`, against a real Bridge with a simulated board and the test broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.net import free_port

from conduyt_bridge.app import extras
from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.device.transports import SimTransport
from conduyt_bridge.northbound.mqtt.fastpath import QOS0_BYTES_LIMIT
from conduyt_bridge.simulator.board import SimulatedBoard


def http_settings(broker: Broker, base_topic: str, port: int) -> Settings:
    return make_settings(
        broker,
        base_topic,
        [{"id": "thermo", "port": "sim://thermostat"}],
        http={"listen": f"127.0.0.1:{port}"},
    )


async def get(port: int, path: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    """GET http://127.0.0.1:port/path; returns (status, body text, headers)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def get_json(port: int, path: str) -> tuple[int, Any]:
    status, body, _ = await get(port, path)
    return status, json.loads(body)


async def wait_http(port: int, path: str, status: int, timeout_s: float = 5.0) -> str:
    """Poll until `path` answers `status`; returns the body."""
    async with asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                got, body, _ = await get(port, path)
                if got == status:
                    return body
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def served(broker: Broker, base_topic: str) -> AsyncIterator[tuple[Bridge, int]]:
    """A running bridge with one sim thermostat, its board online and values published."""
    port = free_port()
    async with running_bridge(http_settings(broker, base_topic, port)) as bridge:
        board = bridge.boards["thermo"]
        await wait_until(lambda: board.online and "temperature_celsius" in board.values)
        await wait_http(port, "/healthz", 200)
        yield bridge, port


async def test_healthz_follows_the_broker_link(
    restartable_broker: Broker, base_topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with served(restartable_broker, base_topic) as (bridge, port):
        status, doc = await get_json(port, "/healthz")
        assert status == 200
        assert doc["status"] == "ok"
        assert doc["broker"] == "connected"
        assert await asyncio.to_thread(extras.health_probe, bridge.settings) == 0

        await restartable_broker.astop()
        doc = json.loads(await wait_http(port, "/healthz", 503))
        assert doc["status"] == "unhealthy"
        assert doc["broker"] == "disconnected"
        assert doc["reason"].startswith("MQTT broker link is down")
        capsys.readouterr()
        assert await asyncio.to_thread(extras.health_probe, bridge.settings) == 1
        [line] = probe_lines(capsys.readouterr().out)
        assert line.startswith("unhealthy: MQTT broker link is down")

        await restartable_broker.astart()
        await wait_http(port, "/healthz", 200, timeout_s=8.0)


def probe_lines(out: str) -> list[str]:
    """The probe's own lines in captured stdout (the running bridge logs there too)."""
    return [line for line in out.splitlines() if line.startswith(("healthy:", "unhealthy:"))]


async def test_health_probe_prints_one_line(
    mqtt_broker: Broker, base_topic: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with served(mqtt_broker, base_topic) as (bridge, port):
        capsys.readouterr()
        assert await asyncio.to_thread(extras.health_probe, bridge.settings) == 0
        assert probe_lines(capsys.readouterr().out) == [
            f"healthy: http://127.0.0.1:{port}/healthz answered 200"
        ]
    # The bridge has stopped: nothing listens on the port any more.
    capsys.readouterr()
    assert extras.health_probe(bridge.settings, timeout_s=1.0) == 1
    [line] = probe_lines(capsys.readouterr().out)
    url = f"http://127.0.0.1:{port}/healthz"
    assert line == f"unhealthy: cannot reach {url}: [Errno 111] Connection refused"


def test_health_probe_without_http_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert extras.health_probe(Settings()) == 1
    assert capsys.readouterr().out == ("unhealthy: --health needs [http] listen to be configured\n")


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("0.0.0.0:9105", "http://127.0.0.1:9105/healthz"),
        (":9105", "http://127.0.0.1:9105/healthz"),
        ("10.1.2.3:80", "http://10.1.2.3:80/healthz"),
        ("[::]:9105", "http://[::1]:9105/healthz"),
        ("[fe80::1]:9105", "http://[fe80::1]:9105/healthz"),
    ],
)
def test_health_url_reaches_wildcard_binds_through_loopback(listen: str, url: str) -> None:
    http = {"listen": listen, "token": "0123456789abcdef"}  # reachable addresses need one
    assert extras.health_url(Settings(http=http)) == url


async def test_readyz_waits_for_the_handshake(mqtt_broker: Broker, base_topic: str) -> None:
    port = free_port()
    settings = http_settings(mqtt_broker, base_topic, port)
    bridge = Bridge(settings)
    transport = cast(SimTransport, bridge.sessions["thermo"].transport)
    sim = cast(SimulatedBoard, transport.board)
    sim.faults.silent = True  # a hung board: HELLO is never answered
    task = asyncio.create_task(bridge.run())
    try:
        doc = json.loads(await wait_http(port, "/readyz", 503))
        assert doc == {
            "status": "not ready",
            "reason": "not online: thermo",
            "offline": ["thermo"],
            "boards": {"thermo": "connecting"},
        }
        sim.faults.silent = False
        doc = json.loads(await wait_http(port, "/readyz", 200))
        assert doc == {"status": "ready", "boards": {"thermo": "online"}}
    finally:
        bridge.stop()
        await asyncio.wait_for(task, 10)


async def test_a_busy_http_port_is_retried_without_stopping_the_bridge(
    mqtt_broker: Broker, base_topic: str
) -> None:
    port = free_port()
    squatter = socket.create_server(("127.0.0.1", port))
    try:
        async with running_bridge(http_settings(mqtt_broker, base_topic, port)) as bridge:
            board = bridge.boards["thermo"]
            await wait_until(lambda: board.online)  # the boards are served all the same
            await asyncio.sleep(0.3)
            squatter.close()
            # The next bind attempt (1 s after the first) gets the port.
            await wait_http(port, "/healthz", 200, timeout_s=4.0)
    finally:
        squatter.close()


async def test_metrics_read_the_live_counters(mqtt_broker: Broker, base_topic: str) -> None:
    async with served(mqtt_broker, base_topic) as (bridge, port):
        stats = bridge.sessions["thermo"].stats
        status, body, headers = await get(port, "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }
        thermo = (("device", "thermo"),)
        packets_in = samples[("conduyt_bridge_packets_in_total", thermo)]
        assert 0 < packets_in <= stats.packets_in
        reads = samples[("conduyt_bridge_link_reads_total", thermo)]
        assert 0 < reads <= stats.reads_in
        assert reads <= packets_in  # a read that carried bytes carried a whole packet here
        assert samples[("conduyt_bridge_packets_out_total", thermo)] == stats.packets_out
        assert samples[("conduyt_bridge_board_online", thermo)] == 1.0
        assert samples[("conduyt_bridge_broker_connected", ())] == 1.0
        assert samples[("conduyt_bridge_frame_errors_total", thermo)] == 0.0
        assert samples[("conduyt_bridge_crc_errors_total", thermo)] == 0.0
        assert samples[("conduyt_bridge_framing_errors_total", thermo)] == 0.0
        assert samples[("conduyt_bridge_naks_total", thermo)] == 0.0
        assert ("conduyt_bridge_mqtt_queue_depth", ()) in samples
        # Every answered command is one histogram observation (HELLO, RESET, STREAM_STOP
        # at least), the same commands the p50/p99 window holds.
        count = samples[("conduyt_bridge_command_latency_seconds_count", thermo)]
        assert count == len(stats.latencies_s) >= 3
        assert (
            samples[("conduyt_bridge_command_latency_seconds_bucket", (*thermo, ("le", "+Inf")))]
            == count
        )
        temperature = samples[
            (
                "conduyt_bridge_datastream_value",
                (("datastream", "temperature_celsius"), *thermo, ("unit", "celsius")),
            )
        ]
        assert 10.0 < temperature < 35.0
        assert samples[("conduyt_bridge_events_total", (*thermo, ("type", "DS_EVENT")))] >= 1

        # OpenMetrics for scrapers that ask for it.
        status, body, headers = await get(
            port, "/metrics", Accept="application/openmetrics-text; version=1.0.0"
        )
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n")


async def test_metrics_expose_the_broker_byte_counts(mqtt_broker: Broker, base_topic: str) -> None:
    # The QoS 0 fast path's back-pressure, in bytes (docs/architecture.md 6.1): what waits
    # for the socket (a gauge) and what a broken link took (a counter).
    async with served(mqtt_broker, base_topic) as (bridge, port):
        status, body, _ = await get(port, "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body)}
        queue = families["conduyt_bridge_mqtt_queue_bytes"]
        assert queue.type == "gauge"
        assert queue.documentation.startswith("Bytes encoded for the broker and not yet on")
        assert [s.name for s in queue.samples] == ["conduyt_bridge_mqtt_queue_bytes"]
        assert 0 <= queue.samples[0].value <= QOS0_BYTES_LIMIT
        lost = families["conduyt_bridge_mqtt_lost_bytes"]
        assert lost.type == "counter"
        assert [(s.name, s.value) for s in lost.samples] == [
            ("conduyt_bridge_mqtt_lost_bytes_total", 0.0)
        ]
        # The counter reads the connection's live count at every scrape.
        bridge.mqtt.lost_bytes += 1234
        _, body, _ = await get(port, "/metrics")
        assert "conduyt_bridge_mqtt_lost_bytes_total 1234.0" in body.splitlines()


async def test_each_bridge_has_its_own_registry(mqtt_broker: Broker, base_topic: str) -> None:
    # Two bridges in one process (as in the demo and in tests) must not clash over the
    # global prometheus registry.
    async with (
        served(mqtt_broker, base_topic) as (_, port_a),
        served(mqtt_broker, base_topic + "b") as (_, port_b),
    ):
        for port in (port_a, port_b):
            status, body, _ = await get(port, "/metrics")
            assert status == 200
            assert body.count('conduyt_bridge_packets_in_total{device="thermo"}') == 1


async def test_api_status_document(mqtt_broker: Broker, base_topic: str) -> None:
    async with served(mqtt_broker, base_topic) as (_, port):
        status, doc = await get_json(port, "/api/status")
        assert status == 200
        assert doc["broker"]["connected"] is True
        assert doc["ready"] is True
        assert doc["offline"] == []
        assert doc["base_topic"] == base_topic
        [board] = doc["boards"]
        assert board["id"] == "thermo"
        assert board["state"] == "online"
        assert board["port"] == "sim://thermostat"
        assert board["firmware"] == {"name": "sim-thermostat", "version": "1.2.0"}
        assert [d["slug"] for d in board["datastreams"]] == [
            "temperature_celsius",
            "humidity_percent",
            "setpoint_celsius",
            "heater",
        ]
        temperature = board["datastreams"][0]
        assert temperature["topic"] == f"{base_topic}/thermo/ds/temperature_celsius"
        assert temperature["unit"] == "celsius"
        assert temperature["has_value"] is True
        assert isinstance(temperature["value"], float)
        assert board["counters"]["packets_in"] > 0
        assert board["errors"] == []
