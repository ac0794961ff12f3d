"""The ownership record (`conduyt_bridge.northbound.homeassistant.ownership`): its format, what a
forged record cannot do, and which earlier runs' topics a starting bridge clears (and which it
never touches)."""

from __future__ import annotations

import hashlib
import json

import pytest

from conduyt_bridge.northbound.homeassistant.ownership import (
    Cleanup,
    OwnershipRecord,
    decode_record,
    is_previous_identity,
    plan_cleanup,
    record_topic,
    records_filter,
)

ME = OwnershipRecord(
    client_id="gw1",
    host="pi4",
    prefix="homeassistant",
    boards={"th": "/dev/ttyUSB0", "kt": "/dev/ttyUSB1"},
    nodes=("gw1_bridge", "gw1_th", "gw1_kt"),
)
OWN = record_topic("conduyt", "gw1")


def test_topics() -> None:
    assert OWN == "conduyt/bridge/owned/gw1"
    assert record_topic("c", "a/b+#") == "c/bridge/owned/a_b__~" + sha8("a/b+#")
    assert records_filter("conduyt") == "conduyt/bridge/owned/+"


def sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_client_ids_that_sanitise_alike_get_their_own_record() -> None:
    # A clean id keeps its topic (records already on the broker stay where they are) ...
    assert record_topic("c", "gw_a") == "c/bridge/owned/gw_a"
    assert record_topic("c", "conduyt-bridge") == "c/bridge/owned/conduyt-bridge"
    # ... and an id that needed sanitising can no longer land on it.
    assert record_topic("c", "gw.a") == f"c/bridge/owned/gw_a~{sha8('gw.a')}"
    assert record_topic("c", "gw a") == f"c/bridge/owned/gw_a~{sha8('gw a')}"
    assert record_topic("c", "") == f"c/bridge/owned/~{sha8('')}"
    topics = {record_topic("c", cid) for cid in ("gw_a", "gw.a", "gw a", "gw/a", "gw+a", "")}
    assert len(topics) == 6
    assert all(t.count("/") == 3 and not set(t) & set("+#") for t in topics)


def test_encode_is_the_documented_record() -> None:
    assert json.loads(ME.encode()) == {
        "v": 1,
        "client_id": "gw1",
        "host": "pi4",
        "prefix": "homeassistant",
        "boards": {"th": "/dev/ttyUSB0", "kt": "/dev/ttyUSB1"},
        "nodes": ["gw1_bridge", "gw1_th", "gw1_kt"],
    }
    assert decode_record(ME.encode()) == ME


@pytest.mark.parametrize(
    "doc",
    [
        {"v": 2},
        {**json.loads(ME.encode()), "v": 2},
        {**json.loads(ME.encode()), "boards": {"#": "x"}},  # would clear `{base}/#`
        {**json.loads(ME.encode()), "boards": {"a/b": "x"}},
        {**json.loads(ME.encode()), "boards": {"bridge": "x"}},  # the bridge's own topics
        {**json.loads(ME.encode()), "nodes": ["+"]},
        {**json.loads(ME.encode()), "nodes": ["a/b"]},
        {**json.loads(ME.encode()), "prefix": "#"},
        {**json.loads(ME.encode()), "prefix": ""},
        {**json.loads(ME.encode()), "client_id": ""},
        {**json.loads(ME.encode()), "host": 3},
        [1, 2],
    ],
)
def test_forged_or_foreign_records_are_ignored(doc: object) -> None:
    assert decode_record(json.dumps(doc).encode()) is None


def test_undecodable_records_are_ignored() -> None:
    assert decode_record(b"\xff") is None
    assert decode_record(b"[" * 100_000) is None
    assert decode_record(b"") is None


def test_nothing_to_clear_on_an_unchanged_restart() -> None:
    assert plan_cleanup(ME, {OWN: ME}, OWN) == Cleanup()
    assert not plan_cleanup(ME, {}, OWN)


def test_a_board_removed_from_the_config() -> None:
    now = OwnershipRecord("gw1", "pi4", "homeassistant", {"th": "/dev/ttyUSB0"}, ME.nodes[:2])
    assert plan_cleanup(now, {OWN: ME}, OWN) == Cleanup(
        nodes=(("homeassistant", "gw1_kt"),), boards=("kt",)
    )


def test_a_board_another_record_claims_is_not_cleared() -> None:
    now = OwnershipRecord("gw1", "pi4", "homeassistant", {"th": "/dev/ttyUSB0"}, ME.nodes[:2])
    other = OwnershipRecord("gw2", "pi5", "homeassistant", {"kt": "/dev/ttyACM0"}, ("gw2_kt",))
    plan = plan_cleanup(now, {OWN: ME, "conduyt/bridge/owned/gw2": other}, OWN)
    # The HA node was this bridge's (its client id is in it); the board's topics are shared.
    assert plan == Cleanup(nodes=(("homeassistant", "gw1_kt"),), boards=())


def test_a_node_id_another_gateway_claims_is_not_cleared() -> None:
    # `gw` drove board `a_th`, `gw_a` (another host, live) drives `th`: both node ids are
    # `gw_a_th`. `gw` dropping its board must not empty the other gateway's HA device.
    before = OwnershipRecord(
        "gw", "hostA", "homeassistant", {"a_th": "/dev/ttyUSB0"}, ("gw_bridge", "gw_a_th")
    )
    now = OwnershipRecord("gw", "hostA", "homeassistant", {}, ("gw_bridge",))
    other = OwnershipRecord(
        "gw_a", "hostB", "homeassistant", {"th": "/dev/ttyUSB0"}, ("gw_a_bridge", "gw_a_th")
    )
    own = record_topic("conduyt", "gw")
    found = {own: before, record_topic("conduyt", "gw_a"): other}
    assert plan_cleanup(now, found, own) == Cleanup(nodes=(), boards=("a_th",))
    # The same node under another prefix is not the other gateway's: it is cleared.
    elsewhere = OwnershipRecord("gw_a", "hostB", "ha2", dict(other.boards), other.nodes)
    found = {own: before, record_topic("conduyt", "gw_a"): elsewhere}
    assert plan_cleanup(now, found, own) == Cleanup(
        nodes=(("homeassistant", "gw_a_th"),), boards=("a_th",)
    )


def test_a_renamed_bridge_takes_back_its_old_identity() -> None:
    renamed = OwnershipRecord(
        "gw1-new", "pi4", "homeassistant", dict(ME.boards), ("gw1-new_bridge", "gw1-new_th")
    )
    own = record_topic("conduyt", "gw1-new")
    assert is_previous_identity(renamed, ME)
    assert plan_cleanup(renamed, {OWN: ME}, own) == Cleanup(
        nodes=tuple(("homeassistant", n) for n in ME.nodes), boards=(), records=(OWN,)
    )


def test_another_gateway_is_never_a_previous_identity() -> None:
    # Same base topic, other client id: another machine, or the same machine with other
    # boards or ports. Its nodes, boards and record stay.
    for other in (
        OwnershipRecord("gw2", "pi5", "homeassistant", dict(ME.boards), ("gw2_th",)),
        OwnershipRecord("gw2", "pi4", "homeassistant", {"th": "/dev/ttyUSB9"}, ("gw2_th",)),
        OwnershipRecord("gw2", "pi4", "homeassistant", {"xx": "/dev/ttyUSB0"}, ("gw2_xx",)),
    ):
        assert not is_previous_identity(ME, other)
        assert plan_cleanup(ME, {OWN: ME, "conduyt/bridge/owned/gw2": other}, OWN) == Cleanup()


def test_a_changed_prefix_clears_the_old_prefix() -> None:
    moved = OwnershipRecord("gw1", "pi4", "ha2", dict(ME.boards), ME.nodes)
    plan = plan_cleanup(moved, {OWN: ME}, OWN)
    assert plan == Cleanup(nodes=tuple(("homeassistant", n) for n in ME.nodes))


def test_discovery_turned_off_clears_the_nodes_but_keeps_the_boards() -> None:
    off = OwnershipRecord("gw1", "pi4", "homeassistant", dict(ME.boards), ())
    assert plan_cleanup(off, {OWN: ME}, OWN) == Cleanup(
        nodes=tuple(("homeassistant", n) for n in ME.nodes)
    )
