"""Boards added, removed and renamed at run time through the request API
(`docs/requests.md` §3), as the Sparkplug B and Homie 5 layouts show them against a real
broker: Sparkplug read with the independent decoder (`support.sparkplug_decoder`,
`docs/sparkplug.md` §2), Homie with the convention's controller and checker
(`support.homie_consumer`, `support.homie_schema`, `docs/homie.md`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from support import sparkplug_decoder as spd
from support.broker import Broker
from support.harness import running_bridge
from support.homie_consumer import HomieConsumer
from support.homie_schema import description_problems
from support.recorder import Received, Recorder

from conduyt_bridge.app.config import load_settings
from conduyt_bridge.app.daemon import Bridge

EDGE = "edge"

DEVICE_KEYS = (
    "keepalive_s = 0.5\nkeepalive_misses = 2\nreconnect_min_s = 0.1\n"
    "reconnect_max_s = 0.5\nhello_timeout_ms = 300\n"
)


def write_config(path: Path, broker: Broker, base: str, section: str) -> None:
    """A config file with one board `keep` (`sim://thermostat`) and `section` appended."""
    path.write_text(
        f'[bridge]\nid = "b1"\nbase_topic = "{base}"\n\n'
        f'[mqtt]\nurl = "{broker.url}"\nclient_id = "bridge-{base}"\nreconnect_max_s = 0.5\n\n'
        f"{section}\n"
        f'[[devices]]\nid = "keep"\nport = "sim://thermostat"\n{DEVICE_KEYS}'
    )


def bridge_from(path: Path) -> contextlib.AbstractAsyncContextManager[Bridge]:
    """A Bridge from the config file at `path` (with `config_path`), run in-process."""
    return running_bridge(load_settings(path), config_path=path)


async def ok(bridge: Bridge, action: str, payload: dict[str, Any]) -> Any:
    response = (await bridge.requests.handle(action, payload)).to_json()
    assert response["status"] == "ok", response
    return response["data"]


def spb(base: str, kind: str, dev: str | None = None) -> str:
    return f"spBv1.0/{base}/{kind}/{EDGE}" + (f"/{dev}" if dev else "")


def board_metrics(names: list[str], dev: str) -> list[str]:
    return [n for n in names if n.startswith(f"Boards/{dev}/")]


async def test_sparkplug_births_and_deaths_follow_added_and_removed_boards(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    section = (
        f'[sparkplug]\nenabled = true\ngroup_id = "{base_topic}"\n'
        f'edge_node_id = "{EDGE}"\nstats_interval_s = 0.2\n'
    )
    write_config(path, mqtt_broker, base_topic, section)
    async with (
        Recorder(mqtt_broker, f"spBv1.0/{base_topic}/#") as rec,
        bridge_from(path) as bridge,
    ):
        await rec.wait_for(spb(base_topic, "DBIRTH", "keep"), timeout=10)

        # device/add: a new NBIRTH with the board's node metrics, then its DBIRTH.
        mark = rec.mark()
        await ok(bridge, "device/add", {"id": "lab", "port": "sim://thermostat"})
        nbirth = spd.decode((await rec.wait_for_after(mark, spb(base_topic, "NBIRTH"))).payload)
        names = [m.name for m in nbirth.metrics]
        assert "Boards/lab/online" in names and "Boards/keep/online" in names
        dbirth = await rec.wait_for_after(mark, spb(base_topic, "DBIRTH", "lab"), timeout=10)
        assert "temperature_celsius" in spd.by_name(spd.decode(dbirth.payload))

        # device/remove: its DDEATH, then an NBIRTH without it; later NDATA carry only
        # aliases of that NBIRTH (none of the removed board's).
        mark = rec.mark()
        await ok(bridge, "device/remove", {"id": "lab"})
        ddeath = await rec.wait_for_after(mark, spb(base_topic, "DDEATH", "lab"))
        reborn = await rec.wait_for_after(mark, spb(base_topic, "NBIRTH"))
        assert rec.since(mark).index(ddeath) < rec.since(mark).index(reborn)
        nbirth = spd.decode(reborn.payload)
        names = [m.name for m in nbirth.metrics]
        assert board_metrics(names, "lab") == []
        assert "Boards/keep/online" in names
        aliases = {m.alias: m.name for m in nbirth.metrics if m.HasField("alias")}
        after = rec.mark()
        await rec.wait_for_after(after, spb(base_topic, "NDATA"), timeout=5)
        ndata = [spd.decode(m.payload) for m in rec.since(after, spb(base_topic, "NDATA"))]
        used = {m.alias for payload in ndata for m in payload.metrics}
        assert used <= aliases.keys()
        assert board_metrics([aliases[a] for a in used], "lab") == []
        since = rec.since(mark)
        assert [m for m in since if m.topic.endswith("/lab") and "DDEATH" not in m.topic] == []

        # device/rename: DDEATH of the old id, DBIRTH of the new one, NBIRTH with it.
        await rec.wait_for(spb(base_topic, "DBIRTH", "keep"))
        mark = rec.mark()
        await ok(bridge, "device/rename", {"from": "keep", "to": "kept"})
        await rec.wait_for_after(mark, spb(base_topic, "DDEATH", "keep"))
        await rec.wait_for_after(mark, spb(base_topic, "DBIRTH", "kept"), timeout=10)
        last = rec.since(mark, spb(base_topic, "NBIRTH"))[-1]
        names = [m.name for m in spd.decode(last.payload).metrics]
        assert board_metrics(names, "keep") == [] and "Boards/kept/online" in names
    check_seqs(rec.messages(f"spBv1.0/{base_topic}/+/{EDGE}/#"))


def check_seqs(messages: list[Received]) -> None:
    """Every message after an NBIRTH takes the next seq (mod 256); NDEATH has none."""
    expected: int | None = None
    for msg in messages:
        kind = msg.topic.split("/")[2]
        payload = spd.decode(msg.payload)
        if kind == "NDEATH":
            continue
        if kind == "NBIRTH":
            assert payload.seq == 0
        elif expected is not None:
            assert payload.seq == expected, (msg.topic, payload.seq, expected)
        expected = (payload.seq + 1) % 256


async def test_homie_root_lists_added_and_removed_boards(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    domain = f"{base_topic}-homie"
    path = tmp_path / "config.toml"
    write_config(path, mqtt_broker, base_topic, f'[homie]\nenabled = true\nprefix = "{domain}"\n')
    root = f"bridge-{base_topic}"
    keep, lab, lab2 = f"{root}-keep", f"{root}-lab", f"{root}-lab2"

    async def children(expected: list[str]) -> None:
        topic = homie.topic(root, "$description")
        await homie.rec.wait_for(topic, lambda p: bool(p) and json.loads(p)["children"] == expected)
        await homie.wait_state(root, "ready")
        doc = homie.description(root)
        assert doc is not None and doc["children"] == expected
        assert description_problems(doc, root, root=True) == []

    async with HomieConsumer(mqtt_broker, domain) as homie, bridge_from(path) as bridge:
        await homie.wait_state(keep, "ready")
        await children([keep])

        await ok(bridge, "device/add", {"id": "lab", "port": "sim://thermostat"})
        await homie.wait_state(lab, "ready")
        await children([keep, lab])
        doc = homie.description(lab)
        assert doc is not None and description_problems(doc, lab, root=False) == []
        assert (doc["root"], doc["parent"]) == (root, root)

        await ok(bridge, "device/rename", {"from": "lab", "to": "lab2"})
        await homie.wait_state(lab2, "ready")
        await children([keep, lab2])
        assert homie.state(lab) is None and homie.description(lab) is None

        await ok(bridge, "device/remove", {"id": "lab2"})
        await children([keep])
        assert homie.state(lab2) is None and homie.description(lab2) is None
        assert homie.state(keep) == "ready"
