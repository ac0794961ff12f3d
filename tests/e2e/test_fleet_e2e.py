"""Many gateways on one broker (`docs/fleet.md`): two bridges, each with its own
`[bridge] id`, on one Mosquitto and on two Mosquittos joined by a Mosquitto bridge
connection (`topic # both 0`, the federation a user builds without a commercial cluster).

One bridge runs as a CLI subprocess so that SIGKILL makes its Will fire; the other runs
in-process (`running_bridge`). Checked: the per-bridge topics and the fleet view
(`{base}/bridge/+/devices`); killing one bridge takes only its boards offline (Conduyt
layout and HA availability) and a restart brings them back; a device id claimed by two
bridges is refused by the second (inventory, health, error report) and taken over once the
owner dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.broker import Broker, MosquittoProcess, find_mosquitto
from support.harness import make_settings, running_bridge, spawn_cli, wait_until
from support.mqtt_client import publish, retained_snapshot
from support.recorder import Recorder

from conduyt_bridge.northbound.conduyt.claims import Claim, decode_claim

GW_A = "gw-a"
GW_B = "gw-b"
ONLINE_S = 20.0
"""Longest wait for a subprocess bridge's board to come online (interpreter start)."""


# ---- brokers -------------------------------------------------------------------------------


@pytest.fixture
def federation() -> Iterator[tuple[MosquittoProcess, MosquittoProcess]]:
    """Two private brokers; the second bridges `#` both ways to the first."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("needs a local mosquitto binary for the federated brokers")
    first = MosquittoProcess(binary)
    second = MosquittoProcess(binary)
    second.write_config(
        "\n".join(
            [
                f"listener {second.port} {second.host}",
                "allow_anonymous true",
                "connection fleet",
                f"address {first.host}:{first.port}",
                "topic # both 0",
                "cleansession true",
                "try_private true",
                "restart_timeout 1",
                "",
            ]
        )
    )
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        second.close()
        first.close()


async def _federated(first: MosquittoProcess, second: MosquittoProcess, base: str) -> None:
    """Wait until a retained message published on `second` is seen on `first` (the
    bridge connection is up)."""
    probe = f"{base}/probe"
    async with Recorder(first, probe) as rec:
        for _ in range(50):
            await publish(second, probe, b"1", retain=True)
            with contextlib.suppress(TimeoutError):
                await rec.wait_for(probe, timeout=0.2)
                break
        else:
            pytest.fail("the Mosquitto bridge connection did not come up")
    await publish(second, probe, b"", retain=True)


# ---- bridges -------------------------------------------------------------------------------


def _cli_config(
    path: Path,
    url: str,
    base: str,
    bridge_id: str,
    devices: list[tuple[str, str]],
    *,
    conventions: bool = False,
) -> Path:
    boards = "".join(
        f'[[devices]]\nid = "{dev}"\nport = "{port}"\nreconnect_max_s = 0.5\n'
        for dev, port in devices
    )
    extra = (
        f'[homie]\nenabled = true\nprefix = "{base}-homie"\ndevice_id = "{bridge_id}"\n'
        f'[sparkplug]\nenabled = true\ngroup_id = "{base}"\n'
        if conventions
        else ""
    )
    path.write_text(
        f'[bridge]\nid = "{bridge_id}"\nbase_topic = "{base}"\nlog_level = "info"\n'
        f'[mqtt]\nurl = "{url}"\nclient_id = "cli-{base}-{bridge_id}"\nkeepalive_s = 5\n'
        f'[homeassistant]\nenabled = true\ndiscovery_prefix = "{base}-ha"\n' + extra + boards
    )
    return path


@contextlib.asynccontextmanager
async def cli_bridge(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """The bridge of `config` as a subprocess, its output drained (a full pipe would stall
    it) and shown if the test fails; killed (SIGKILL) on exit if still alive."""
    proc = await spawn_cli(config)
    output: list[bytes] = []

    async def drain(stream: asyncio.StreamReader | None) -> None:
        while stream is not None and (line := await stream.readline()):
            output.append(line)

    drains = [asyncio.create_task(drain(proc.stdout)), asyncio.create_task(drain(proc.stderr))]
    try:
        yield proc
    except BaseException:
        print(b"".join(output[-60:]).decode(errors="replace"))
        raise
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await asyncio.wait(drains, timeout=5)


async def kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL: no clean stop, so the broker publishes the bridge's Will."""
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)


def b_settings(
    broker: Any, base: str, devices: list[dict[str, Any]], *, conventions: bool = False
) -> Any:
    extra: dict[str, Any] = {}
    if conventions:
        extra = {
            "homie": {"enabled": True, "prefix": f"{base}-homie", "device_id": GW_B},
            "sparkplug": {"enabled": True, "group_id": base},
        }
    return make_settings(
        broker,
        base,
        devices,
        mqtt={"client_id": f"inproc-{base}-{GW_B}"},
        homeassistant={"enabled": True, "discovery_prefix": f"{base}-ha"},
        bridge={"id": GW_B},
        **extra,
    )


def availability(config: bytes, key: str) -> list[str]:
    """The availability topics of entity `key` in a device-mode discovery config."""
    return [a["topic"] for a in json.loads(config)["cmps"][key]["availability"]]


# ---- kill one bridge: only its boards go offline -------------------------------------------


async def _kill_one_scenario(broker_a: Any, broker_b: Any, base: str, tmp_path: Path) -> None:
    """A (subprocess, board `a1`) on `broker_a`, B (in-process, board `b1`) on `broker_b`;
    everything is watched on `broker_b`."""
    config = _cli_config(
        tmp_path / "a.toml",
        broker_a.url,
        base,
        GW_A,
        [("a1", "sim://thermostat")],
        conventions=True,
    )
    settings = b_settings(broker_b, base, [{"id": "b1", "port": "sim://kitchen"}], conventions=True)
    homie, spb = f"{base}-homie/5", f"spBv1.0/{base}"
    async with (
        Recorder(broker_b, f"{base}/#", f"{homie}/+/$state", f"{spb}/#") as rec,
        running_bridge(settings) as bridge_b,
        cli_bridge(config) as proc,
    ):
        await rec.wait_for(f"{base}/a1/status", payload=b"online", timeout=ONLINE_S)
        await rec.wait_for(f"{base}/b1/status", payload=b"online", timeout=10)
        # Per-bridge topics and the fleet view.
        await rec.wait_for(f"{base}/bridge/{GW_A}/state", payload=b"online")
        await rec.wait_for(f"{base}/bridge/{GW_B}/state", payload=b"online")
        fleet = await retained_snapshot(broker_b, f"{base}/bridge/+/devices")
        boards = {t: [e["id"] for e in json.loads(p)] for t, p in fleet.items()}
        assert boards == {
            f"{base}/bridge/{GW_A}/devices": ["a1"],
            f"{base}/bridge/{GW_B}/devices": ["b1"],
        }
        claims = await retained_snapshot(broker_b, f"{base}/+/owner")
        owners = {t: decode_claim(p) for t, p in claims.items()}
        assert {t: c.bridge for t, c in owners.items() if c} == {
            f"{base}/a1/owner": GW_A,
            f"{base}/b1/owner": GW_B,
        }
        # HA: each board's availability follows its own bridge; bridge devices by id.
        ha = await retained_snapshot(broker_b, f"{base}-ha/device/+/config")
        a1 = next(p for t, p in ha.items() if t.endswith("_a1/config"))
        b1 = next(p for t, p in ha.items() if t.endswith("_b1/config"))
        for discovered, gw, dev in ((a1, GW_A, "a1"), (b1, GW_B, "b1")):
            assert availability(discovered, "status") == [f"{base}/bridge/{gw}/state"]
            ds = next(k for k in json.loads(discovered)["cmps"] if k.startswith("ds_"))
            gates = [f"{base}/bridge/{gw}/state", f"{base}/{dev}/status"]
            assert availability(discovered, ds) == gates
        gateways = {
            json.loads(p)["dev"]["name"]: json.loads(p)["dev"]["identifiers"]
            for t, p in ha.items()
            if t.endswith("_bridge/config")
        }
        assert sorted(gateways) == [f"Conduyt bridge {GW_A}", f"Conduyt bridge {GW_B}"]
        for name, identifiers in gateways.items():
            assert any(i.endswith("_" + name.rsplit(" ", 1)[1]) for i in identifiers)

        # Every convention sees both gateways: Homie roots ready, Sparkplug edge nodes born.
        for gw in (GW_A, GW_B):
            await rec.wait_for(f"{homie}/{gw}/$state", payload=b"ready", timeout=ONLINE_S)
            await rec.wait_for(f"{spb}/NBIRTH/{gw}", timeout=ONLINE_S)

        # Kill A: its Will, then its board offline; B and its board carry on.
        mark = rec.mark()
        await kill(proc)
        await rec.wait_for_after(mark, f"{base}/bridge/{GW_A}/state", payload=b"offline")
        await rec.wait_for_after(mark, f"{base}/a1/status", payload=b"offline")
        # Homie: A's root is lost by its Will; Sparkplug: A's NDEATH Will. Nothing of B's.
        await rec.wait_for_after(mark, f"{homie}/{GW_A}/$state", payload=b"lost")
        await rec.wait_for_after(mark, f"{spb}/NDEATH/{GW_A}")
        assert not rec.since(mark, f"{homie}/{GW_B}/$state")
        assert not rec.since(mark, f"{spb}/NDEATH/{GW_B}")
        assert not rec.since(mark, f"{spb}/DDEATH/{GW_B}/b1")
        await rec.wait_for_after(mark, f"{base}/b1/ds/+", timeout=5)
        assert not [m for m in rec.since(mark, f"{base}/b1/status") if m.payload != b"online"]
        assert not rec.since(mark, f"{base}/bridge/{GW_B}/state")
        assert bridge_b.boards["b1"].online
        assert not bridge_b.refused
        # a1 stays A's: B does not run it (it is not configured there).
        assert "a1" not in bridge_b.boards

        # Restart A: its board returns.
        mark = rec.mark()
        async with cli_bridge(config):
            state = f"{base}/bridge/{GW_A}/state"
            await rec.wait_for_after(mark, state, payload=b"online", timeout=ONLINE_S)
            await rec.wait_for_after(mark, f"{base}/a1/status", payload=b"online", timeout=ONLINE_S)
            await rec.wait_for_after(mark, f"{base}/a1/ds/+", timeout=5)
        assert not [m for m in rec.since(mark, f"{base}/b1/status") if m.payload != b"online"]


async def test_kill_one_bridge_on_one_broker(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    await _kill_one_scenario(mqtt_broker, mqtt_broker, base_topic, tmp_path)


async def test_kill_one_bridge_across_bridged_brokers(
    federation: tuple[MosquittoProcess, MosquittoProcess], base_topic: str, tmp_path: Path
) -> None:
    first, second = federation
    await _federated(first, second, base_topic)
    await _kill_one_scenario(first, second, base_topic, tmp_path)


# ---- one device id, two bridges -----------------------------------------------------------


async def _duplicate_scenario(broker_a: Any, broker_b: Any, base: str, tmp_path: Path) -> None:
    """A runs `dup`; B, configured with `dup` and `own`, refuses `dup` and runs `own`;
    after A dies B takes `dup` over."""
    config = _cli_config(
        tmp_path / "a.toml", broker_a.url, base, GW_A, [("dup", "sim://thermostat")]
    )
    async with Recorder(broker_b, f"{base}/#") as rec, cli_bridge(config) as proc:
        await rec.wait_for(f"{base}/dup/status", payload=b"online", timeout=ONLINE_S)
        settings = b_settings(
            broker_b,
            base,
            # Another port than A's `dup`: one host, one board id on one port would read
            # as a renamed bridge to the HA ownership record (`docs/fleet.md` §4).
            [{"id": "dup", "port": "sim://kitchen"}, {"id": "own", "port": "sim://thermostat"}],
        )
        mark = rec.mark()
        async with running_bridge(settings) as bridge_b:
            await rec.wait_for_after(mark, f"{base}/own/status", payload=b"online", timeout=10)
            await wait_until(lambda: "dup" in bridge_b.refused)
            assert f"'{GW_A}'" in bridge_b.refused["dup"]
            assert not bridge_b.boards["dup"].online
            report = (await rec.wait_for_after(mark, f"{base}/dup/error")).json()
            assert report["topic"] == f"{base}/dup/owner" and report["name"] == "FORBIDDEN"
            assert GW_A in report["message"]
            inventory = (
                await rec.wait_for_after(
                    mark,
                    f"{base}/bridge/{GW_B}/devices",
                    predicate=lambda b: b'"refused"' in b and b'"online"' in b,
                )
            ).json()
            dup = next(e for e in inventory if e["id"] == "dup")
            assert dup["state"] == "refused" and GW_A in dup["reason"]
            assert bridge_b.health()["boards"]["dup"]["state"] == "refused"
            # Nothing of B touched the board A runs.
            assert not [m for m in rec.since(mark, f"{base}/dup/status") if m.payload != b"online"]
            claim = await retained_snapshot(broker_b, f"{base}/dup/owner")
            owner = decode_claim(claim[f"{base}/dup/owner"])
            assert owner is not None and owner.bridge == GW_A

            # The owner dies: its Will releases the claim and B takes the board.
            mark = rec.mark()
            await kill(proc)
            await rec.wait_for_after(
                mark, f"{base}/dup/owner", predicate=lambda b: GW_B.encode() in b, timeout=10
            )
            await rec.wait_for_after(mark, f"{base}/dup/status", payload=b"online", timeout=10)
            await wait_until(lambda: bridge_b.boards["dup"].online)
            assert not bridge_b.refused
            await rec.wait_for_after(
                mark,
                f"{base}/bridge/{GW_B}/devices",
                predicate=lambda b: b'"refused"' not in b,
            )

            # A comes back: now it is A that refuses `dup`, and B keeps it.
            mark = rec.mark()
            async with cli_bridge(config):
                await rec.wait_for_after(
                    mark,
                    f"{base}/bridge/{GW_A}/devices",
                    predicate=lambda b: b'"refused"' in b,
                    timeout=ONLINE_S,
                )
                assert bridge_b.boards["dup"].online
                assert not [
                    m for m in rec.since(mark, f"{base}/dup/status") if m.payload != b"online"
                ]


async def test_duplicate_device_id_on_one_broker(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    await _duplicate_scenario(mqtt_broker, mqtt_broker, base_topic, tmp_path)


async def test_duplicate_device_id_across_bridged_brokers(
    federation: tuple[MosquittoProcess, MosquittoProcess], base_topic: str, tmp_path: Path
) -> None:
    first, second = federation
    await _federated(first, second, base_topic)
    await _duplicate_scenario(first, second, base_topic, tmp_path)


# ---- forged and stale states -----------------------------------------------------------------


async def test_own_state_forged_offline_is_answered(mqtt_broker: Broker, base_topic: str) -> None:
    """A forged (or late) retained `offline` on this bridge's own state would let the others
    take its boards: the bridge answers with `online`, retained."""
    settings = b_settings(mqtt_broker, base_topic, [{"id": "b1", "port": "sim://kitchen"}])
    state = f"{base_topic}/bridge/{GW_B}/state"
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec, running_bridge(settings):
        await rec.wait_for(f"{base_topic}/b1/status", payload=b"online", timeout=10)
        mark = rec.mark()
        await publish(mqtt_broker, state, b"offline", retain=True)
        await rec.wait_for_after(mark, state, payload=b"online", timeout=5)
        assert (await retained_snapshot(mqtt_broker, state))[state] == b"online"


async def test_retained_online_of_a_dead_owner_without_heartbeat_is_released(
    mqtt_broker: Broker, base_topic: str
) -> None:
    """The owner died while the broker was down: its Will was lost and its state reads
    `online` for ever, but its health heartbeat stopped. After 3 intervals the board is
    taken over."""
    ghost = "ghost"
    await publish(mqtt_broker, f"{base_topic}/bridge/{ghost}/state", b"online", retain=True)
    claim = Claim(ghost, "dead", time.time() - 3600).encode()
    await publish(mqtt_broker, f"{base_topic}/dup/owner", claim, retain=True)
    settings = make_settings(
        mqtt_broker,
        base_topic,
        [{"id": "dup", "port": "sim://kitchen"}],
        mqtt={"client_id": f"inproc-{base_topic}-{GW_B}"},
        bridge={"id": GW_B, "health_interval_s": 0.3},
    )
    async with Recorder(mqtt_broker, f"{base_topic}/#") as rec, running_bridge(settings) as b:
        await wait_until(lambda: "dup" in b.refused)
        await rec.wait_for(
            f"{base_topic}/dup/owner", predicate=lambda p: GW_B.encode() in p, timeout=10
        )
        await rec.wait_for(f"{base_topic}/dup/status", payload=b"online", timeout=10)
        assert not b.refused
        health = (await rec.wait_for(f"{base_topic}/bridge/{GW_B}/health")).json()
        assert health["health_interval_s"] == 0.3
