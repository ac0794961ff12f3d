"""The pure parts of many gateways on one broker (`docs/fleet.md`): bridge ids, the
per-bridge and fleet topics, claims, and `[bridge] id` validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conduyt_bridge.app.config_sections import BridgeSection
from conduyt_bridge.northbound.conduyt.claims import (
    Claim,
    _running_boards,
    decode_claim,
    refusal_reason,
)
from conduyt_bridge.northbound.conduyt.topics import (
    BridgeTopics,
    FleetTopics,
    bridge_id_problem,
    parse_command_topic,
    topic_safe_id,
)


def test_bridge_topics_carry_the_bridge_id() -> None:
    t = BridgeTopics("conduyt", "pi4")
    assert (t.state, t.devices, t.health) == (
        "conduyt/bridge/pi4/state",
        "conduyt/bridge/pi4/devices",
        "conduyt/bridge/pi4/health",
    )
    assert t.device("th").owner == "conduyt/th/owner"


def test_fleet_filters_and_bridge_of() -> None:
    f = FleetTopics("conduyt")
    assert f.devices == "conduyt/bridge/+/devices"
    assert f.states == "conduyt/bridge/+/state"
    assert f.bridge_of("conduyt/bridge/pi4/state", "state") == "pi4"
    assert f.bridge_of("conduyt/bridge/pi4/devices", "state") is None
    assert f.bridge_of("conduyt/bridge/owned/state", "state") is None  # an HA record
    assert f.bridge_of("other/bridge/pi4/state", "state") is None


def test_bridge_topics_are_never_command_topics() -> None:
    assert parse_command_topic("conduyt", "conduyt/bridge/pi4/state") is None
    assert parse_command_topic("conduyt", "conduyt/bridge/cmd") is None
    assert parse_command_topic("conduyt", "conduyt/th/owner") is None


@pytest.mark.parametrize("bad", ["", "owned", "a/b", "+", "#", "-x", "x" * 65, "a b"])
def test_bad_bridge_ids(bad: str) -> None:
    assert bridge_id_problem(bad) is not None
    with pytest.raises(ValidationError, match=r"bridge\.id|id"):
        BridgeSection(id=bad)


def test_default_bridge_id_is_topic_safe() -> None:
    assert bridge_id_problem(BridgeSection().id) is None
    assert topic_safe_id("pi4.local") == "pi4-local"
    assert topic_safe_id("...") == "conduyt-bridge"
    assert topic_safe_id("owned") == "owned-bridge"
    assert topic_safe_id("_x_") == "x"


def test_claims_round_trip_and_malformed_claims() -> None:
    claim = Claim("pi4", "abc", 12.5)
    assert decode_claim(claim.encode()) == claim
    for bad in (
        b"",
        b"x",
        b"[]",
        b'{"bridge":"a/b","session":"s","since":1}',
        b'{"bridge":"a","session":1,"since":1}',
        b'{"bridge":"a","session":"s","since":true}',
    ):
        assert decode_claim(bad) is None


def test_the_older_claim_wins_and_ties_go_to_the_smaller_id() -> None:
    old, new = Claim("b", "s", 1.0), Claim("a", "s", 2.0)
    assert old.beats(new) and not new.beats(old)
    assert Claim("a", "s", 1.0).beats(Claim("b", "s", 1.0))


def test_inventory_lists_running_boards_only() -> None:
    doc = b'[{"id":"a","state":"online"},{"id":"b","state":"refused"},{"id":"c/x"},{"id":"d"}]'
    assert _running_boards(doc) == ["a", "d"]
    assert _running_boards(b"{}") == []
    assert "'gw-a'" in refusal_reason("th", "gw-a")
