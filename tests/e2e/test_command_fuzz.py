"""Hypothesis fuzzes every command topic through the real path: Mosquitto → bridge →
simulated board on a pty.

Every case is a real MQTT 5 publish with a Response Topic and its own Correlation Data,
so each one must produce exactly one outcome: `{"ok": true, …}` (the rare valid random
command) or the error report. All cases go through the broker rather than calling
`Board.execute` directly: with one persistent publishing client a case costs a few
milliseconds, so a few hundred stay far below a minute, and the whole path (topic
parsing, retained-flag handling, response topics, the board's worker queue) is what gets
fuzzed. One bridge and one board serve every example (hypothesis runs the examples in the
fixture's event loop, where the bridge keeps running between them).

Checked for every case: one reply with the right Correlation Data, never an `INTERNAL`
error (a handler bug), a refusal sends no packet, and every packet the board ever
received is a command `check_command` accepts for this board. At the end the bridge still
works and the error reports on `{dev}/error` match the refusals one for one.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.broker import Broker
from support.harness import wait_until
from support.mqtt_client import publish_properties
from support.rig import Rig, rig

from conduyt_bridge.device.capabilities import check_command
from conduyt_bridge.protocol.constants import OTA_TYPES, PacketType, PinMode
from conduyt_bridge.protocol.modules import CATALOG
from conduyt_bridge.protocol.packet import encode_packet

CASES = 300

PINS = [*(str(n) for n in range(10)), "42", "A0", "-1", "07"]
MODULES = ["servo", "neopixel", "dht", "0", "1", "2", "fan"]
COMMANDS = sorted({c for m in ("servo", "neopixel", "dht") for c in CATALOG[m].commands} | {"spin"})
SLUGS = ["light_percent", "door_open", "status", "nope"]
KEYS = [
    "value",
    "mode",
    "interval_ms",
    "threshold",
    "transaction",
    "angle",
    "pin",
    "r",
    "g",
    "b",
    "index",
    "count",
    "sensor_type",
    "level",
]
WORDS = [
    "on",
    "off",
    "ON",
    "1",
    "0",
    "128",
    "255",
    "256",
    "input",
    "output",
    "pwm",
    "analog",
    "input_pullup",
    "change",
    "rising",
    "analog_poll",
    '{"mode": "analog_poll", "interval_ms": 100}',
    '{"mode": "change", "interval_ms": 20}',
    "90",
    "[1, 544, 2400]",
    "",
]
COMMAND_TYPES = [int(t) for t in PacketType if t.is_command]

topics = st.one_of(
    st.builds("pin/{}/set".format, st.sampled_from(PINS)),
    st.builds("pin/{}/mode/set".format, st.sampled_from(PINS)),
    st.builds("pin/{}/get".format, st.sampled_from(PINS)),
    st.builds("pin/{}/subscribe/set".format, st.sampled_from(PINS)),
    st.builds("module/{}/{}".format, st.sampled_from(MODULES), st.sampled_from(COMMANDS)),
    st.builds("ds/{}/set".format, st.sampled_from(SLUGS)),
    st.just("cmd"),
    st.builds("cmd/{:02x}".format, st.sampled_from(COMMAND_TYPES)),
    st.builds("cmd/{}".format, st.text("0123456789abcdefABCDEFxz", min_size=1, max_size=3)),
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-300, 70_000)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(WORDS),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=8,
)

packets = st.builds(
    encode_packet,
    st.sampled_from(COMMAND_TYPES) | st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=12),
)

payloads = st.one_of(
    st.binary(max_size=48),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(WORDS).map(str.encode),
    packets,
    packets.map(lambda p: p[:-1] + bytes((p[-1] ^ 1,))),  # CRC broken
)
"""Anything at all."""

near = st.integers(-2, 20) | st.integers(0, 300) | st.integers(60_000, 70_000)
"""Numbers around the interesting bounds (pins, bytes, u16)."""


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()


@st.composite
def plausible(draw: st.DrawFn) -> tuple[str, bytes]:
    """A command that is well formed more often than not: right topic shape, right kind
    of payload, values around the bounds, so the checks past parsing get exercised."""
    kind = draw(st.sampled_from(["pin", "mode", "sub", "module", "raw", "ds"]))
    pin = draw(st.integers(0, 11))
    if kind == "pin":
        value = draw(near | st.booleans() | st.sampled_from(["on", "off"]))
        return f"pin/{pin}/set", _dumps(value) if not isinstance(value, str) else value.encode()
    if kind == "mode":
        return f"pin/{pin}/mode/set", draw(st.sampled_from(WORDS[8:13])).encode()
    if kind == "sub":
        doc = {
            "mode": draw(st.sampled_from(["change", "rising", "falling", "analog_poll", "off"])),
            "interval_ms": draw(near),
            "threshold": draw(near),
        }
        return f"pin/{pin}/subscribe/set", _dumps(doc)
    if kind == "module":
        module = draw(st.sampled_from(["servo", "neopixel", "dht"]))
        spec = CATALOG[module].commands[draw(st.sampled_from(sorted(CATALOG[module].commands)))]
        names = list(spec.arg_names)
        args = {n: draw(near) for n in names if draw(st.booleans()) or n in ("pin",)}
        body = draw(st.sampled_from([args, list(args.values()), None]))
        return f"module/{module}/{spec.name}", b"" if body is None else _dumps(body)
    if kind == "ds":
        slug = draw(st.sampled_from(SLUGS[:3]))
        value = draw(near | st.booleans() | st.text(max_size=6))
        return f"ds/{slug}/set", _dumps({"value": value})
    type_ = draw(st.sampled_from(COMMAND_TYPES))
    body = bytes(draw(st.lists(st.integers(0, 12) | st.integers(0, 255), max_size=8)))
    topic = draw(st.sampled_from(["cmd", f"cmd/{type_:02x}", f"cmd/{type_:02X}"]))
    return topic, encode_packet(type_, draw(st.integers(0, 255)), body)


cases = st.one_of(st.tuples(topics, payloads), plausible(), plausible())
"""Two thirds plausible commands, one third anything."""


@dataclass
class Fuzz:
    rig: Rig
    client: aiomqtt.Client
    ids: itertools.count[int]
    refusals: int = 0
    checked: int = 0


@pytest.fixture
async def fuzz(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Fuzz]:
    async with rig(mqtt_broker, base_topic, tmp_path, "kitchen") as r:
        client = aiomqtt.Client(
            mqtt_broker.host,
            mqtt_broker.port,
            identifier=f"fuzz-{base_topic}",
            protocol=aiomqtt.ProtocolVersion.V5,
        )
        async with client:
            state = Fuzz(r, client, itertools.count())
            yield state
            # After every example: the bridge still answers, and the error reports on
            # {dev}/error match the refusals one for one.
            assert (await r.request("pin/0/mode/set", "output"))["ok"] is True
            await wait_until(
                lambda: len(r.rec.messages(f"{r.p}/error")) == state.refusals, timeout_s=5
            )
            assert state.checked >= CASES


def assert_valid_commands(r: Rig) -> None:
    """Every packet the board received is a command this board can carry out; checked by
    `check_command` and, for what the config forbids, independently of it."""
    hello = r.board.hello
    for packet in r.board.received:
        assert packet.type not in OTA_TYPES, packet  # allow_ota is false
        assert packet.type != PacketType.DS_READ, packet  # always NAKed by the firmware
        check_command(
            hello,
            packet.type,
            packet.payload,
            max_command_payload=hello.max_payload - 4,
            allow_ota=False,
        )


def is_poll(type_: int, payload: bytes) -> bool:
    """A bridge-side edge poll (PIN_READ, explicit INPUT mode byte), not a command's packet."""
    return type_ == PacketType.PIN_READ and len(payload) == 2 and payload[1] == PinMode.INPUT


@settings(
    max_examples=CASES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases)
async def test_fuzz_every_command_topic(fuzz: Fuzz, case: tuple[str, bytes]) -> None:
    suffix, payload = case
    r = fuzz.rig
    n = next(fuzz.ids)
    reply_topic = f"{r.base}/fuzz-reply/{n}"
    correlation = f"case-{n}".encode()
    mark = r.mark()
    rec_mark = r.rec.mark()
    props = publish_properties(response_topic=reply_topic, correlation_data=correlation)
    await fuzz.client.publish(f"{r.p}/{suffix}", payload, qos=1, properties=props)
    got = await r.rec.wait_for_after(rec_mark, reply_topic, timeout=5)
    assert got.correlation_data == correlation
    doc: dict[str, Any] = got.json()
    fuzz.checked += 1
    if doc["ok"] is not True:
        fuzz.refusals += 1
        assert doc["ok"] is False
        assert doc["topic"] == f"{r.p}/{suffix}"
        assert doc["error"] in {"capability", "payload", "forbidden", "nak"}, doc
        assert doc["name"] != "INTERNAL", doc
        assert isinstance(doc["message"], str) and doc["message"]
        if doc["error"] != "nak":
            # refused in the bridge: nothing but background polls reached the board
            sent = [(p.type, p.payload) for p in r.board.received[mark:]]
            assert [s for s in sent if not is_poll(*s)] == [], (suffix, payload, doc)
    assert_valid_commands(r)
