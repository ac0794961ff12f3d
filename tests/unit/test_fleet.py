"""The pure parts of many gateways on one broker (`docs/fleet.md`): bridge ids, the
per-bridge and fleet topics, claims, and `[bridge] id` validation."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import ValidationError

from conduyt_bridge.app.config import Settings, load_settings
from conduyt_bridge.app.config_sections import BridgeSection
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.northbound.conduyt import claims as claims_module
from conduyt_bridge.northbound.conduyt.claims import (
    Claim,
    ClaimKeeper,
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
from conduyt_bridge.northbound.mqtt.connection import MqttConnection


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


@pytest.mark.parametrize("bad", ["", "owned", "cmd", "a/b", "+", "#", "-x", "x" * 65, "a b"])
def test_bad_bridge_ids(bad: str) -> None:
    assert bridge_id_problem(bad) is not None
    with pytest.raises(ValidationError, match=r"bridge\.id|id"):
        BridgeSection(id=bad)


def test_default_bridge_id_is_topic_safe() -> None:
    assert bridge_id_problem(BridgeSection().id) is None
    assert topic_safe_id("pi4.local") == "pi4-local"
    assert topic_safe_id("...") == "conduyt-bridge"
    assert topic_safe_id("owned") == "owned-bridge"
    assert topic_safe_id("cmd") == "cmd-bridge"
    assert bridge_id_problem("cmd") == (
        "bridge id 'cmd' is reserved ({base}/bridge/owned/ holds HA records; the ACL lets "
        "Home Assistant write {base}/+/cmd/+)"
    )
    assert topic_safe_id("_x_") == "x"


def test_claims_round_trip_and_malformed_claims() -> None:
    claim = Claim("pi4", "abc", 1_718_000_000.25)
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


@pytest.mark.parametrize("since", ["NaN", "Infinity", "-Infinity", "-1e308", "0", "1e308"])
def test_a_claim_from_nowhere_in_time_is_malformed(since: str) -> None:
    """json.loads takes NaN and -1e308; either would beat every honest claim."""
    assert decode_claim(b'{"bridge":"x","session":"s","since":' + since.encode() + b"}") is None


def test_a_claim_from_the_future_is_malformed_beyond_the_clock_skew() -> None:
    soon = time.time() + claims_module.CLOCK_SKEW_S / 2
    later = time.time() + claims_module.CLOCK_SKEW_S * 2
    assert decode_claim(Claim("x", "s", soon).encode()) == Claim("x", "s", soon)
    assert decode_claim(Claim("x", "s", later).encode()) is None


# ---- the client id ----------------------------------------------------------------------


def test_default_client_id_derives_from_the_bridge_id(tmp_path: Path) -> None:
    """Two bridges left at the default client id would kick each other off the broker."""
    assert Settings(bridge={"id": "gw-a"}).mqtt.client_id == "conduyt-bridge-gw-a"
    assert Settings(bridge={"id": "gw-b"}).mqtt.client_id == "conduyt-bridge-gw-b"
    explicit = Settings(bridge={"id": "gw-a"}, mqtt={"client_id": "conduyt-bridge"})
    assert explicit.mqtt.client_id == "conduyt-bridge"
    config = tmp_path / "c.toml"
    config.write_text('[bridge]\nid = "file"\n')
    assert load_settings(config, env={}).mqtt.client_id == "conduyt-bridge-file"
    by_env = load_settings(config, env={"CONDUYT_BRIDGE_BRIDGE__ID": "env"})
    assert by_env.mqtt.client_id == "conduyt-bridge-env"
    pinned = load_settings(config, env={"CONDUYT_BRIDGE_MQTT__CLIENT_ID": "mine"})
    assert pinned.mqtt.client_id == "mine"


# ---- the keeper against a recording broker link ----------------------------------------------


class FakeLink:
    """What `ClaimKeeper` uses of `MqttConnection`: records what it publishes."""

    def __init__(self, retained: dict[str, bytes] | None = None) -> None:
        self.connected = True
        self.retained = retained or {}
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        coalesce: bool = True,
    ) -> None:
        self.sent.append((topic, payload, retain))

    async def subscribe(self, filters: list[str]) -> None:
        pass

    async def fetch_retained(self, filters: list[str]) -> dict[str, bytes]:
        return dict(self.retained)

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.sent if t == topic]


def keeper(
    boards: list[str], link: FakeLink, interval_s: float = 30.0
) -> tuple[ClaimKeeper, list[str]]:
    started: list[str] = []

    async def start(dev: str) -> None:
        started.append(dev)

    async def stop(dev: str) -> None:
        pass

    topics = BridgeTopics("c", "me")
    mqtt = cast(MqttConnection, link)
    return ClaimKeeper(topics, boards, mqtt, start, stop, health_interval_s=interval_s), started


async def test_own_state_not_online_is_answered_with_online() -> None:
    link = FakeLink()
    k, _ = keeper(["a"], link)
    await k.start()
    for payload in (b"offline", b"", b"garbage"):
        link.sent.clear()
        await k.on_message("c/bridge/me/state", payload)
        assert link.sent == [("c/bridge/me/state", b"online", True)]
    link.sent.clear()
    await k.on_message("c/bridge/me/state", b"online")
    k.closing = True  # the clean stop's own `offline` stays
    await k.on_message("c/bridge/me/state", b"offline")
    assert link.sent == []


async def test_a_stale_heartbeat_releases_a_retained_online_owner() -> None:
    """The owner died while the broker was down: its state stays `online` for ever."""
    ghost = Claim("ghost", "s", time.time() - 100).encode()
    link = FakeLink({"c/bridge/ghost/state": b"online", "c/a/owner": ghost})
    k, started = keeper(["a"], link, interval_s=0.05)
    assert await k.start() == []
    assert "a" in k.refused
    watch = asyncio.create_task(k.watch())
    try:
        await asyncio.wait_for(_until(lambda: "a" in k.held), 2)
    finally:
        watch.cancel()
    assert started == ["a"] and not k.refused
    assert decode_claim(link.on("c/a/owner")[-1]) == k.own


async def test_a_heartbeat_keeps_the_owner_live() -> None:
    link = FakeLink(
        {"c/bridge/gw/state": b"online", "c/a/owner": Claim("gw", "s", 2e9 - 1e9).encode()}
    )
    k, started = keeper(["a"], link, interval_s=0.05)
    await k.start()
    health = json.dumps({"uptime_s": 1, "health_interval_s": 0.05}).encode()
    watch = asyncio.create_task(k.watch())
    try:
        for _ in range(10):
            await k.on_message("c/bridge/gw/health", health)
            await asyncio.sleep(0.04)
    finally:
        watch.cancel()
    assert "a" in k.refused and started == []


async def _until(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - the keeper's own task changes it
        await asyncio.sleep(0.01)


async def test_a_dead_owner_s_boards_are_marked_offline_only_while_still_its() -> None:
    """B died; C took `x` over (its claim names C): `x`'s `online` from C stays. `y` still
    names B: offline. `z` this bridge took over: never offline from here."""
    link = FakeLink(
        {
            "c/bridge/b/state": b"online",
            "c/bridge/c/state": b"online",
            "c/z/owner": Claim("b", "s", 1.5e9).encode(),
        }
    )
    k, started = keeper(["z"], link)
    await k.start()
    assert "z" in k.refused
    await k.on_message("c/bridge/b/devices", b'[{"id":"x"},{"id":"y"},{"id":"z"}]')
    await k.on_message("c/x/owner", Claim("c", "s", 1.6e9).encode())
    await k.on_message("c/y/owner", Claim("b", "s", 1.5e9).encode())
    link.sent.clear()
    await k.on_message("c/bridge/b/state", b"offline")
    assert link.on("c/x/status") == []
    assert link.on("c/y/status") == [b"offline"]
    assert link.on("c/z/status") == []
    assert started == ["z"]


async def test_stop_session_does_not_block_the_message_handler() -> None:
    """A board given up while its session is slow to end must not stall inbound traffic."""
    bridge = Bridge(
        Settings(bridge={"id": "me"}, devices=[{"id": "th", "port": "sim://thermostat"}])
    )
    ended = asyncio.Event()

    async def slow_session() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.5)  # a transport that takes its time to close
            ended.set()

    async with asyncio.TaskGroup() as tg:
        bridge._group = tg
        bridge._session_tasks["th"] = tg.create_task(slow_session())
        await asyncio.sleep(0)
        begun = time.monotonic()
        await bridge._stop_session("th")
        assert time.monotonic() - begun < 0.2
        assert not ended.is_set()
        # Taking the board back waits for the old session to end before starting anew.
        await bridge._start_session("th")
        await asyncio.wait_for(ended.wait(), 2)
        await _until(
            lambda: (
                "th" in bridge._session_tasks
                and bridge._session_tasks["th"].get_name() == "session-th"
            )
        )
        bridge._group = None
        for task in list(bridge._session_tasks.values()):
            task.cancel()


def test_the_older_claim_wins_and_ties_go_to_the_smaller_id() -> None:
    old, new = Claim("b", "s", 1.0), Claim("a", "s", 2.0)
    assert old.beats(new) and not new.beats(old)
    assert Claim("a", "s", 1.0).beats(Claim("b", "s", 1.0))


def test_inventory_lists_running_boards_only() -> None:
    doc = b'[{"id":"a","state":"online"},{"id":"b","state":"refused"},{"id":"c/x"},{"id":"d"}]'
    assert _running_boards(doc) == ["a", "d"]
    assert _running_boards(b"{}") == []
    assert "'gw-a'" in refusal_reason("th", "gw-a")
