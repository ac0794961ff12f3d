"""Claims on device ids: one bridge of a fleet runs a board (`docs/fleet.md` §2).

Every bridge that runs board `dev` keeps a retained claim on `{base}/{dev}/owner`:

```json
{"bridge": "pi4", "session": "3f2a…", "since": 1718000000.25}
```

`bridge` is the owner's `[bridge] id`, `session` is random per run, `since` is when the
run claimed it (s since the epoch; a claim whose `since` is not finite, before 2001 or
later than now plus `CLOCK_SKEW_S` is malformed). A single MQTT Will carries one message,
so a claim is *released* when its owner's `{base}/bridge/{owner}/state` says `offline`
(its Will, or a clean stop) or says nothing at all, and also when the owner's health
heartbeat (`{base}/bridge/{owner}/health`, every `health_interval_s`, which the document
carries) has not been heard for `STALE_HEARTBEATS` intervals: a retained `online` of a
bridge that died while the broker was down (its Will lost) does not hold boards forever.
A claim of a live bridge is *held*. This bridge's own state reading anything but `online`
while it is connected (a late Will, a cleared or forged state) is answered with `online`.

`ClaimKeeper` decides for one bridge: at start, from the retained claims and states read
once (`start`), which boards it may run; afterwards, from the live messages on
`{base}/bridge/+/state` and `{base}/{dev}/owner` (`on_message`), when to take over a board
whose owner went offline and when to give one up (two live bridges that claimed one board
at the same moment: the older claim wins, ties go to the smaller bridge id, so both sides
agree). A refused board's session is not started; the keeper reports it (warning log,
`refused` reasons for the inventory and health, an error report on `{base}/{dev}/error`).

A dead bridge cannot say `offline` for its boards (its Will is its own state), so every
live bridge that sees another bridge go from live to dead publishes `offline` (retained)
on the `{base}/{dev}/status` of the boards that bridge's inventory
`{base}/bridge/{id}/devices` listed as run by it, but only while the board's claim (read on
`{base}/+/owner`) still names the dead bridge and never for a board it runs itself: the
`online` of the bridge that took the board over is not overwritten (`docs/fleet.md` §3).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from conduyt_bridge.errors import ConduytForbiddenError, ErrorName, describe_exception
from conduyt_bridge.northbound.conduyt.payloads import dumps, error_report
from conduyt_bridge.northbound.conduyt.topics import (
    BRIDGE_SEGMENT,
    BridgeTopics,
    FleetTopics,
    bridge_id_problem,
)
from conduyt_bridge.northbound.mqtt.connection import MqttConnection

log = structlog.stdlib.get_logger(__name__)

ONLINE = b"online"

_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""A device id as the configuration allows it (`conduyt_bridge.app.config_devices`)."""

BoardSwitch = Callable[[str], Awaitable[None]]
"""Starts or stops the session of one board (the composition root's side)."""

CLOCK_SKEW_S = 60.0
"""How far in the future a claim's `since` may lie (clocks of two hosts differ)."""

EARLIEST_SINCE = 1_000_000_000.0
"""No claim is older than this (2001-09-09): a forged `since` of `-1e308` is malformed."""

STALE_HEARTBEATS = 3.0
"""A bridge whose health was not heard for this many of its intervals counts as dead."""

DEFAULT_HEALTH_INTERVAL_S = 30.0
"""The health interval assumed for a bridge whose health document does not say it."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One retained claim (see the module docstring)."""

    bridge: str
    session: str
    since: float

    def encode(self) -> bytes:
        """The retained JSON payload."""
        return dumps({"bridge": self.bridge, "session": self.session, "since": self.since})

    def beats(self, other: Claim) -> bool:
        """True when this claim wins against `other` (both owners live): the older claim,
        and on a tie the smaller bridge id, then the smaller session."""
        return (self.since, self.bridge, self.session) < (other.since, other.bridge, other.session)


def decode_claim(payload: bytes) -> Claim | None:
    """The claim in `payload`, or None when it is empty or not a well-formed claim (a
    malformed claim is treated as no claim: any client may publish there)."""
    try:
        doc: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    bridge, session, since = doc.get("bridge"), doc.get("session"), doc.get("since")
    if not isinstance(bridge, str) or bridge_id_problem(bridge) is not None:
        return None
    if not isinstance(session, str) or isinstance(since, bool):
        return None
    if not isinstance(since, int | float):
        return None
    when = float(since)
    if not math.isfinite(when) or not EARLIEST_SINCE <= when <= time.time() + CLOCK_SKEW_S:
        return None  # NaN, +-inf, -1e308 or the far future would beat every claim
    return Claim(bridge, session, when)


def _health_interval(payload: bytes) -> float | None:
    """`health_interval_s` of a health document, if it names a positive finite one."""
    try:
        doc: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    value = doc.get("health_interval_s") if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def _running_boards(payload: bytes) -> list[str]:
    """The ids of the boards an inventory (`{base}/bridge/{id}/devices`) lists as run by
    its bridge: every entry whose state is not `refused`; nothing for a malformed one."""
    try:
        doc: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(doc, list):
        return []
    return [
        e["id"]
        for e in doc
        if isinstance(e, dict)
        and isinstance(e.get("id"), str)
        and _DEVICE_ID.match(e["id"]) is not None
        and e["id"] != BRIDGE_SEGMENT
        and e.get("state") != "refused"
    ]


def refusal_reason(dev: str, owner: str) -> str:
    """The sentence a refused board is reported with."""
    return (
        f"device id '{dev}' is claimed by bridge '{owner}', which is online: this bridge "
        f"does not run it (give one of the two boards another id, or stop '{owner}')"
    )


class ClaimKeeper:
    """Claims of one bridge on its configured boards (see the module docstring).

    `start_board`/`stop_board` are called (awaited) when a refused board is taken over and
    when a running board is given up; `start` does not call them: it returns the boards
    to start. `watch` (a background job) notices owners whose heartbeat stopped.
    """

    def __init__(
        self,
        topics: BridgeTopics,
        boards: Iterable[str],
        mqtt: MqttConnection,
        start_board: BoardSwitch,
        stop_board: BoardSwitch,
        health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S,
    ) -> None:
        self.topics = topics
        self.fleet = FleetTopics(topics.base)
        self.boards = list(boards)
        self.mqtt = mqtt
        self._start_board = start_board
        self._stop_board = stop_board
        self.health_interval_s = health_interval_s
        """This bridge's interval, also assumed for a bridge whose health does not say."""
        self.own = Claim(topics.bridge_id, uuid.uuid4().hex, 0.0)
        self.held: set[str] = set()
        """Boards this bridge runs (its claim is published)."""
        self.refused: dict[str, str] = {}
        """Board id → reason, for boards a live bridge holds."""
        self.owners: dict[str, str] = {}
        """Board id → the bridge whose claim refused it."""
        self.states: dict[str, bytes] = {}
        """Bridge id → its last `{base}/bridge/{id}/state` payload."""
        self.inventories: dict[str, list[str]] = {}
        """Bridge id → the boards its inventory says it runs (not `refused`)."""
        self.claims: dict[str, Claim] = {}
        """Board id → the claim last read on `{base}/{dev}/owner` (any board of the base)."""
        self.heartbeats: dict[str, float] = {}
        """Bridge id → when its health was last heard (`time.monotonic`)."""
        self.intervals: dict[str, float] = {}
        """Bridge id → the `health_interval_s` its health document names."""
        self.alive: set[str] = set()
        """Bridges counted live at the last look (to notice the turn to dead once)."""
        self.closing = False
        """Set at shutdown: the own `offline` state is then not answered."""
        self._watch_from = time.monotonic()
        self._by_owner_topic = {topics.device(dev).owner: dev for dev in self.boards}
        self._started = False
        self.listeners: list[Callable[[], None]] = []
        """Called whenever `refused` changed (`AdapterHost.on_refused_changed` of
        `conduyt_bridge.northbound.host`)."""

    # ---- start ----------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Read the retained claims and bridge states once and decide; publish this run's
        claims. Returns the boards to start, in configuration order. When the broker
        cannot be read every board starts, and the live messages settle any conflict."""
        self.own = Claim(self.topics.bridge_id, self.own.session, round(time.time(), 3))
        self._watch_from = time.monotonic()  # a bridge not heard yet gets its intervals
        found: dict[str, bytes] = {}
        if self.boards and self.mqtt.connected:
            try:
                found = await self.mqtt.fetch_retained(
                    [self.fleet.states, *self._by_owner_topic]
                )
            except aiomqtt.MqttError as exc:
                log.info("board claims not read", error=describe_exception(exc))
        for topic, payload in found.items():
            bridge = self.fleet.bridge_of(topic, "state")
            if bridge is not None and bridge != self.own.bridge:
                self.states[bridge] = payload
        self.alive = {bridge for bridge in self.states if self._live(bridge)}
        granted: list[str] = []
        for dev in self.boards:
            claim = decode_claim(found.get(self.topics.device(dev).owner, b""))
            if claim is not None:
                self.claims[dev] = claim
            if claim is not None and claim.bridge != self.own.bridge and self._live(claim.bridge):
                self._refuse(dev, claim.bridge)
            else:
                self._hold(dev)
                granted.append(dev)
        self._started = True
        self._changed()
        return granted

    def filters(self) -> list[str]:
        """What to subscribe to: every bridge's inventory, state and health, then every
        board's claim (states first, so an owner's state is known when its claim
        arrives)."""
        return [
            self.fleet.devices,
            self.fleet.states,
            self.fleet.health,
            f"{self.topics.base}/+/owner",
        ]

    async def on_connect(self) -> None:
        """Subscribe, and publish the claims held again (a broker without persistence may
        have lost them)."""
        for dev in self.held:
            self._publish_claim(dev)
        await self.mqtt.subscribe(self.filters())

    async def watch(self) -> None:
        """Background job: take over the boards of owners whose heartbeat stopped (their
        state may still read `online`: a Will lost while the broker was down)."""
        while True:
            await asyncio.sleep(min(1.0, self.health_interval_s / 2))
            for bridge in sorted(self.alive):
                if not self._live(bridge):
                    log.warning("another bridge's heartbeat stopped", owner=bridge)
                    await self._reconsider(bridge)

    def add_board(self, dev: str) -> bool:
        """Board `dev` added at run time (`docs/architecture.md` §11): claimed (True), or
        refused when a live bridge's claim last read on `{base}/+/owner` holds it."""
        if dev not in self.boards:
            self.boards.append(dev)
        self._by_owner_topic[self.topics.device(dev).owner] = dev
        if not self._started or dev in self.held:
            return dev in self.held
        claim = self.claims.get(dev)
        if claim is not None and claim.bridge != self.own.bridge and self._live(claim.bridge):
            self._refuse(dev, claim.bridge)
            return False
        self._hold(dev)
        return True

    def remove_board(self, dev: str, *, release: bool = True) -> None:
        """Forget board `dev` (removed at run time); `release` empties its claim."""
        self.boards = [d for d in self.boards if d != dev]
        self._by_owner_topic.pop(self.topics.device(dev).owner, None)
        self.owners.pop(dev, None)
        if release and dev in self.held:
            self.claims.pop(dev, None)
            self.mqtt.publish(self.topics.device(dev).owner, b"", qos=1, retain=True)
        self.held.discard(dev)
        if self.refused.pop(dev, None) is not None:
            self._changed()

    # ---- live messages ----------------------------------------------------------------------

    def handles(self, topic: str) -> bool:
        """True for the topics `on_message` takes."""
        if self._claimed_board(topic) is not None:
            return True
        leaves = ("state", "devices", "health")
        return any(self.fleet.bridge_of(topic, leaf) is not None for leaf in leaves)

    def _claimed_board(self, topic: str) -> str | None:
        """`dev` of a `{base}/{dev}/owner` topic."""
        head, _, leaf = topic.rpartition("/")
        base, _, dev = head.rpartition("/")
        if leaf != "owner" or base != self.topics.base or dev == BRIDGE_SEGMENT:
            return None
        return dev if _DEVICE_ID.match(dev) is not None else None

    async def on_message(self, topic: str, payload: bytes) -> None:
        """A bridge's state, inventory or health, or a board's claim."""
        dev = self._claimed_board(topic)
        if dev is not None:
            claim = decode_claim(payload)
            if claim is None:
                self.claims.pop(dev, None)
            else:
                self.claims[dev] = claim
            if topic in self._by_owner_topic:
                await self._on_claim(dev, claim)
            return
        inventory_of = self.fleet.bridge_of(topic, "devices")
        if inventory_of is not None:
            if inventory_of != self.own.bridge:
                self.inventories[inventory_of] = _running_boards(payload)
            return
        health_of = self.fleet.bridge_of(topic, "health")
        if health_of is not None:
            if health_of != self.own.bridge:
                self.heartbeats[health_of] = time.monotonic()
                interval = _health_interval(payload)
                if interval is not None:
                    self.intervals[health_of] = interval
                await self._reconsider(health_of)
            return
        bridge = self.fleet.bridge_of(topic, "state")
        if bridge is None:
            return
        if bridge == self.own.bridge:
            self._keep_own_state(payload)
            return
        self.states[bridge] = payload
        await self._reconsider(bridge)

    def _keep_own_state(self, payload: bytes) -> None:
        """This bridge runs: a state of it that is not `online` (a late Will, a cleared
        retained state, a forged `offline`) would let the others take its boards."""
        if payload == ONLINE or self.closing or not self.mqtt.connected:
            return
        log.warning(
            "this bridge's state reads not online while it runs: publishing online",
            bridge=self.own.bridge,
            state=payload[:32].decode(errors="replace"),
        )
        self.mqtt.publish(self.topics.state, ONLINE, qos=1, retain=True)

    async def _reconsider(self, bridge: str) -> None:
        """After news of `bridge`: once it is not live, take over the refused boards it
        owned and, if it just turned dead, mark the boards it ran offline."""
        if self._live(bridge):
            self.alive.add(bridge)
            return
        was_live = bridge in self.alive
        self.alive.discard(bridge)
        taken = [d for d, o in self.owners.items() if o == bridge and d in self.refused]
        for dev in taken:
            log.warning(
                "board's owner went offline: taking the board over", device=dev, owner=bridge
            )
            self._hold(dev)
        if was_live:
            self._mark_offline(bridge)
        for dev in taken:
            await self._start_board(dev)

    async def _on_claim(self, dev: str, claim: Claim | None) -> None:
        if not self._started:
            return  # `start` reads the claims itself and decides
        own = self.own
        if dev in self.held:
            if claim is None or claim == own:
                if claim is None:
                    self._publish_claim(dev)  # someone emptied it: it is still ours
                return
            if claim.bridge == own.bridge:
                if claim.since <= own.since:
                    self._publish_claim(dev)  # an earlier run's claim, delivered late
                else:
                    log.error(
                        "another process runs with this bridge id: give each its own "
                        "[bridge] id",
                        bridge=own.bridge,
                        device=dev,
                    )
                return
            if not self._live(claim.bridge) or own.beats(claim):
                self._publish_claim(dev)
                return
            # Both live and the other claim is older: give the board up.
            self._refuse(dev, claim.bridge)
            await self._stop_board(dev)
            return
        if claim is None or claim.bridge == own.bridge or not self._live(claim.bridge):
            if dev in self.refused:
                log.warning("board's claim released: taking the board over", device=dev)
                self._hold(dev)
                await self._start_board(dev)
            return
        if self.owners.get(dev) != claim.bridge:
            self._refuse(dev, claim.bridge)

    # ---- helpers -----------------------------------------------------------------------------

    def _live(self, bridge: str) -> bool:
        """State `online` and a heartbeat within `STALE_HEARTBEATS` of its intervals (a
        bridge not heard yet: counted from this bridge's start)."""
        if self.states.get(bridge) != ONLINE:
            return False
        heard = self.heartbeats.get(bridge, self._watch_from)
        interval = self.intervals.get(bridge, self.health_interval_s)
        return time.monotonic() - heard <= STALE_HEARTBEATS * interval

    def _mark_offline(self, bridge: str) -> None:
        """`offline` on the status of the boards `bridge` ran: it just went offline and
        cannot say it itself (its Will covers only its own state). Only boards whose claim
        still names it and that this bridge does not run: a board another bridge took
        over keeps that bridge's `online`."""
        boards = [
            dev
            for dev in self.inventories.get(bridge, [])
            if dev not in self.held
            and (claim := self.claims.get(dev)) is not None
            and claim.bridge == bridge
        ]
        for dev in boards:
            self.mqtt.publish(self.topics.device(dev).status, b"offline", qos=1, retain=True)
        if boards:
            log.info(
                "another bridge went offline: its boards marked offline",
                owner=bridge,
                devices=boards,
            )

    def _hold(self, dev: str) -> None:
        was_refused = self.refused.pop(dev, None) is not None
        self.owners.pop(dev, None)
        self.held.add(dev)
        self.claims[dev] = self.own
        self._publish_claim(dev)
        if was_refused:
            self._changed()

    def _changed(self) -> None:
        for listener in self.listeners:
            try:
                listener()
            except Exception:  # one adapter's bug must not stop the others hearing it
                log.exception("claims listener failed", listener=repr(listener))

    def _publish_claim(self, dev: str) -> None:
        self.mqtt.publish(self.topics.device(dev).owner, self.own.encode(), qos=1, retain=True)

    def _refuse(self, dev: str, owner: str) -> None:
        self.held.discard(dev)
        reason = refusal_reason(dev, owner)
        self.refused[dev] = reason
        self.owners[dev] = owner
        own = self.own.bridge
        log.warning("board refused: another bridge claims it", device=dev, owner=owner, bridge=own)
        topics = self.topics.device(dev)
        error = ConduytForbiddenError(f"bridge '{own}': {reason}", ErrorName.FORBIDDEN)
        report = dumps(error_report(topics.owner, error))
        self.mqtt.publish(topics.error, report, qos=1, coalesce=False)
        self._changed()


__all__ = [
    "CLOCK_SKEW_S",
    "STALE_HEARTBEATS",
    "Claim",
    "ClaimKeeper",
    "decode_claim",
    "refusal_reason",
]
