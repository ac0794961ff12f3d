"""Pin topics end to end: simulated board on a real pty → bridge → real Mosquitto.

Every command is published with an MQTT 5 Response Topic, so each test waits for the
exact outcome; packets are checked on the simulator's receive log (type + payload; the
seq is the bridge's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.broker import Broker
from support.harness import wait_until
from support.mqtt_client import publish
from support.rig import Rig, rig

from conduyt_bridge.protocol.constants import PacketType


@pytest.fixture
async def uno(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig(mqtt_broker, base_topic, tmp_path) as r:
        yield r


# ------------------------------------------------------------------------------ modes, writes


async def test_mode_write_and_read(uno: Rig) -> None:
    mark = uno.mark()
    assert await uno.request("pin/13/mode/set", "output") == {
        "ok": True,
        "pin": 13,
        "mode": "output",
    }
    assert await uno.request("pin/13/set", "ON") == {
        "ok": True,
        "pin": 13,
        "value": 1,
        "mode": "output",
    }
    assert uno.board.pin_values[13] == 1
    assert await uno.request("pin/13/set", '{"value": 0, "transaction": "t-1"}') == {
        "ok": True,
        "pin": 13,
        "value": 0,
        "mode": "output",
        "transaction": "t-1",
    }
    # PIN_WRITE always carries the mode byte (OUTPUT for a level).
    assert uno.sent(mark) == [
        (PacketType.PIN_MODE, b"\x0d\x01"),
        (PacketType.PIN_WRITE, b"\x0d\x01\x01"),
        (PacketType.PIN_WRITE, b"\x0d\x00\x01"),
    ]
    # one-shot read: value on pin/13 (plain number, not retained) and in the result
    uno.board.set_pin(14, 512)
    mark = uno.mark()
    assert await uno.request("pin/13/get", "") == {"ok": True, "pin": 13, "value": 0}
    msg = await uno.rec.wait_for(f"{uno.p}/pin/13")
    assert (msg.payload, msg.retain) == (b"0", False)
    assert await uno.request("pin/14/mode/set", "analog") == {
        "ok": True,
        "pin": 14,
        "mode": "analog",
    }
    assert await uno.request("pin/14/get", "anything") == {"ok": True, "pin": 14, "value": 512}
    await uno.rec.wait_for(f"{uno.p}/pin/14", payload=b"512")
    assert uno.sent(mark) == [
        (PacketType.PIN_READ, b"\x0d\x00"),  # digital: explicit mode byte INPUT
        (PacketType.PIN_MODE, b"\x0e\x03"),
        (PacketType.PIN_READ, b"\x0e\x03"),  # analog mode → analog read
    ]
    assert uno.rec.messages(f"{uno.p}/error") == []


async def test_pwm_duty_one_is_pwm(uno: Rig) -> None:
    mark = uno.mark()
    await uno.request("pin/3/mode/set", "pwm")
    assert await uno.request("pin/3/set", "1") == {"ok": True, "pin": 3, "value": 1, "mode": "pwm"}
    assert await uno.request("pin/3/set", "255") == {
        "ok": True,
        "pin": 3,
        "value": 255,
        "mode": "pwm",
    }
    assert await uno.request("pin/3/set", "off") == {
        "ok": True,
        "pin": 3,
        "value": 0,
        "mode": "pwm",
    }
    assert uno.sent(mark) == [
        (PacketType.PIN_MODE, b"\x03\x02"),
        (PacketType.PIN_WRITE, b"\x03\x01\x02"),  # duty 1 with the PWM mode byte (§4.2)
        (PacketType.PIN_WRITE, b"\x03\xff\x02"),
        (PacketType.PIN_WRITE, b"\x03\x00\x02"),
    ]
    # Unknown mode (never set through the bridge): by capability, 2..255 is a PWM duty.
    mark = uno.mark()
    assert await uno.request("pin/5/set", "128") == {
        "ok": True,
        "pin": 5,
        "value": 128,
        "mode": "pwm",
    }
    assert await uno.request("pin/7/set", "1") == {
        "ok": True,
        "pin": 7,
        "value": 1,
        "mode": "output",
    }
    assert uno.sent(mark) == [
        (PacketType.PIN_WRITE, b"\x05\x80\x02"),
        (PacketType.PIN_WRITE, b"\x07\x01\x01"),
    ]


@pytest.mark.parametrize(
    ("suffix", "payload", "error", "name", "message", "setup"),
    [
        (
            "pin/42/mode/set",
            "output",
            "capability",
            "INVALID_PIN",
            "pin 42 does not exist: this board has 20 pins",
            None,
        ),
        (
            "pin/A0/get",
            "",
            "capability",
            "INVALID_PIN",
            "pin 'A0' does not exist: this board has 20 pins, numbered 0..19 (the HELLO_RESP "
            "index, e.g. A0 = 14 on an Uno)",
            None,
        ),
        (
            "pin/4/mode/set",
            "pwm",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "pin 4 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)",
            None,
        ),
        (
            "pin/13/mode/set",
            "analog",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "pin 13 supports input, output, input_pullup; not analog (analog pins: 14, 15, 16, "
            "17, 18, 19)",
            None,
        ),
        (
            "pin/13/mode/set",
            "fast",
            "payload",
            "BAD_MODE",
            "pin 13: mode must be one of input, output, pwm, analog, input_pullup; got 'fast'",
            None,
        ),
        (
            "pin/13/set",
            "1",
            "capability",
            "WRONG_PIN_MODE",
            "pin 13 is in input mode: set mode output first",
            ("pin/13/mode/set", "input"),
        ),
        (
            "pin/13/set",
            "128",
            "capability",
            "OUT_OF_RANGE",
            "pin 13 is in output mode and takes 0 or 1, got 128",
            ("pin/13/mode/set", "output"),
        ),
        (
            "pin/3/set",
            "300",
            "capability",
            "OUT_OF_RANGE",
            "pin 3 is in pwm mode and takes a PWM duty cycle 0..255, got 300",
            ("pin/3/mode/set", "pwm"),
        ),
        (
            "pin/12/set",
            "128",
            "capability",
            "PIN_MODE_UNSUPPORTED",
            "pin 12 supports input, output, input_pullup; not pwm (pwm pins: 3, 5, 6, 9, 10, 11)",
            None,
        ),
        (
            "pin/13/set",
            "half",
            "payload",
            "BAD_VALUE",
            "pin 13 takes 0/1, on/off, true/false or a PWM duty 0..255, not 'half'",
            None,
        ),
        ("pin/13/set", "", "payload", "EMPTY_PAYLOAD", "payload is empty", None),
        ("pin/13/set", b"\xff\xfe", "payload", "NOT_UTF8", "payload is not UTF-8 text", None),
        (
            "pin/13/set",
            '{"val": 1}',
            "payload",
            "NO_VALUE",
            'JSON object for pin 13 needs a "value" member',
            None,
        ),
    ],
)
async def test_refusals(
    uno: Rig,
    suffix: str,
    payload: str,
    error: str,
    name: str,
    message: str,
    setup: tuple[str, str] | None,
) -> None:
    if setup is not None:
        assert (await uno.request(*setup))["ok"] is True
    report = await uno.refused(suffix, payload)
    assert report == {
        "topic": f"{uno.p}/{suffix}",
        "error": error,
        "code": None,
        "name": name,
        "message": message,
    }


async def test_transaction_and_plain_error_topic(uno: Rig) -> None:
    """Without a response topic: the error still goes to {dev}/error, with the transaction."""
    await publish(uno.broker, f"{uno.p}/pin/99/set", '{"value": 1, "transaction": 7}')
    msg = await uno.rec.wait_for(f"{uno.p}/error")
    assert (msg.retain, msg.json()) == (
        False,
        {
            "topic": f"{uno.p}/pin/99/set",
            "error": "capability",
            "code": None,
            "name": "INVALID_PIN",
            "message": "pin 99 does not exist: this board has 20 pins",
            "transaction": 7,
        },
    )


async def test_retained_and_read_only_refused(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, read_only=True) as r:
        report = await r.refused("pin/13/mode/set", "output")
        assert report["error"] == "forbidden" and report["name"] == "READ_ONLY"
        mark = r.mark()
        await publish(mqtt_broker, f"{r.p}/pin/13/set", "1", retain=True)
        msg = await r.rec.wait_for(f"{r.p}/error", lambda b: b"RETAINED_COMMAND" in b)
        assert msg.json()["error"] == "forbidden"
        assert r.sent(mark) == []
        await publish(mqtt_broker, f"{r.p}/pin/13/set", b"", retain=True)  # clear it


async def test_timeout_and_nak(uno: Rig) -> None:
    uno.board.faults.drop_replies = 1
    mark = uno.mark()
    reply = await uno.request("pin/13/mode/set", "output")
    assert reply == {
        "ok": False,
        "topic": f"{uno.p}/pin/13/mode/set",
        "error": "timeout",
        "code": None,
        "name": "TIMEOUT",
        "message": "no answer to PIN_MODE within 500 ms",
    }
    assert uno.sent(mark) == [(PacketType.PIN_MODE, b"\x0d\x01")]  # sent; the reply was lost
    uno.board.faults.nak[PacketType.PIN_WRITE] = 0x04
    reply = await uno.request("pin/13/set", "1")
    assert reply == {
        "ok": False,
        "topic": f"{uno.p}/pin/13/set",
        "error": "nak",
        "code": 4,
        "name": "INVALID_PIN",
        "message": "board refused PIN_WRITE: INVALID_PIN (0x04)",
    }


async def test_json_payload_format(mqtt_broker: Broker, base_topic: str, tmp_path: Path) -> None:
    async with rig(mqtt_broker, base_topic, tmp_path, mqtt={"payload_format": "json"}) as r:
        r.board.set_pin(2, 1)
        assert await r.request("pin/2/get", "") == {"ok": True, "pin": 2, "value": 1}
        doc = (await r.rec.wait_for(f"{r.p}/pin/2")).json()
        assert doc["value"] == 1 and doc["ts"].endswith("Z") and set(doc) == {"value", "ts"}


# ------------------------------------------------------------------------------ subscriptions


def pin_events(rig: Rig, pin: int) -> list[bytes]:
    return [m.payload for m in rig.rec.messages(f"{rig.p}/pin/{pin}")]


async def test_analog_poll_subscription(uno: Rig) -> None:
    uno.board.set_pin(14, 700)
    mark = uno.mark()
    reply = await uno.request(
        "pin/14/subscribe/set", '{"mode": "analog_poll", "interval_ms": 100, "threshold": 4}'
    )
    assert reply == {
        "ok": True,
        "pin": 14,
        "subscription": {"mode": "analog_poll", "interval_ms": 100, "threshold": 4},
    }
    assert uno.sent(mark) == [(PacketType.PIN_SUBSCRIBE, b"\x0e\x04\x64\x00\x04\x00\x00")]
    await uno.rec.wait_for(f"{uno.p}/pin/14", payload=b"700")
    # published once, on its typed topic: not mirrored raw on evt/90 by default
    assert uno.rec.messages(f"{uno.p}/evt/90") == []
    mark = uno.mark()
    assert await uno.request("pin/14/subscribe/set", "off") == {
        "ok": True,
        "pin": 14,
        "subscription": "off",
    }
    assert await uno.request("pin/14/subscribe/set", "OFF") == {
        "ok": True,
        "pin": 14,
        "subscription": "off",
    }
    # the second off sends nothing (the board would NAK INVALID_PIN)
    assert uno.sent(mark) == [(PacketType.PIN_UNSUBSCRIBE, b"\x0e")]


async def test_get_reads_analog_while_analog_poll_runs(uno: Rig) -> None:
    """`pin/14` carries ADC counts from the PIN_EVENTs of an analog_poll: a one-shot get
    must read analog too, not digital 0/1, even when the pin's mode is unknown or digital."""
    uno.board.set_pin(14, 700)
    await uno.request("pin/14/subscribe/set", '{"mode": "analog_poll", "threshold": 4}')
    await uno.rec.wait_for(f"{uno.p}/pin/14", payload=b"700")
    mark = uno.mark()
    assert await uno.request("pin/14/get", "") == {"ok": True, "pin": 14, "value": 700}
    await uno.request("pin/14/mode/set", "input")
    assert await uno.request("pin/14/get", "") == {"ok": True, "pin": 14, "value": 700}
    assert uno.sent(mark) == [
        (PacketType.PIN_READ, b"\x0e\x03"),  # analog, although the mode is unknown
        (PacketType.PIN_MODE, b"\x0e\x00"),
        (PacketType.PIN_READ, b"\x0e\x03"),  # analog, although the mode is input
    ]
    await wait_until(lambda: len(pin_events(uno, 14)) >= 3)
    assert set(pin_events(uno, 14)) == {b"700"}  # never a digital 0/1 in the ADC series
    # once the subscription is off, the input-mode pin is read digitally again
    await uno.request("pin/14/subscribe/set", "off")
    mark = uno.mark()
    reply = await uno.request("pin/14/get", "")
    assert reply["value"] in (0, 1)
    assert uno.sent(mark) == [(PacketType.PIN_READ, b"\x0e\x00")]
    assert uno.rec.messages(f"{uno.p}/error") == []


async def test_edge_subscriptions_are_polled_by_the_bridge(uno: Rig) -> None:
    board = uno.board
    board.set_pin(2, 0)
    mark = uno.mark()
    reply = await uno.request("pin/2/subscribe/set", '{"mode": "rising", "interval_ms": 20}')
    assert reply["subscription"] == {"mode": "rising", "interval_ms": 20, "threshold": 0}
    # no PIN_SUBSCRIBE: the firmware never fires RISING (Q11); digital PIN_READs instead
    await wait_until(lambda: len(uno.sent(mark, skip=frozenset())) >= 3)
    assert set(uno.sent(mark, skip=frozenset())) == {(PacketType.PIN_READ, b"\x02\x00")}
    await asyncio.sleep(0.1)
    assert pin_events(uno, 2) == []  # rising: the first reading is not an edge
    board.set_pin(2, 1)
    await uno.rec.wait_for(f"{uno.p}/pin/2", payload=b"1")
    assert uno.rec.messages(f"{uno.p}/evt/90") == []  # typed topic only (no raw_mirror)
    board.set_pin(2, 0)
    await asyncio.sleep(0.15)
    assert pin_events(uno, 2) == [b"1"]  # falling edge not published in rising mode
    board.set_pin(2, 1)
    await wait_until(lambda: pin_events(uno, 2) == [b"1", b"1"])
    # switch to change: first reading is published, then every edge
    await uno.request("pin/2/subscribe/set", "change")
    await wait_until(lambda: len(pin_events(uno, 2)) == 3)
    board.set_pin(2, 0)
    await wait_until(lambda: pin_events(uno, 2)[-1] == b"0")
    await uno.request("pin/2/subscribe/set", '{"mode": "off"}')
    count = len(uno.sent(mark, skip=frozenset()))
    await asyncio.sleep(0.2)
    assert len(uno.sent(mark, skip=frozenset())) <= count + 1  # polling stopped


async def test_subscription_refusals(uno: Rig) -> None:
    report = await uno.refused("pin/2/subscribe/set", '{"mode": "analog_poll"}')
    assert (report["name"], report["message"]) == (
        "PIN_MODE_UNSUPPORTED",
        "pin 2 has no analog input: analog_poll needs ANALOG_IN (analog pins: 14, 15, 16, 17, "
        "18, 19)",
    )
    report = await uno.refused("pin/2/subscribe/set", '{"mode": "change", "interval_ms": 5}')
    assert report["message"] == "change on pin 2: interval_ms must be 20..65535, got 5"
    report = await uno.refused("pin/2/subscribe/set", '{"mode": "change", "every": 5}')
    assert (report["error"], report["message"]) == (
        "payload",
        "pin 2 subscription: unknown member 'every' (expected mode, interval_ms, threshold)",
    )
    report = await uno.refused("pin/2/subscribe/set", "sometimes")
    assert report["message"] == (
        "pin 2 subscription: mode must be one of change, rising, falling, analog_poll or off; "
        "got 'sometimes'"
    )


async def test_subscription_slots_leak_until_reset(uno: Rig) -> None:
    """Uno (max_payload 128 → AVR → 8 slots). Unsubscribing does not free a slot (Q6), so
    the ninth new subscription is refused before the board would NAK 0x0B."""
    analog = [14, 15, 16, 17, 18, 19]
    for pin in analog:
        await uno.request(
            f"pin/{pin}/subscribe/set", '{"mode": "analog_poll", "interval_ms": 1000}'
        )
    # updating an active subscription takes no new slot
    await uno.request("pin/14/subscribe/set", '{"mode": "analog_poll", "interval_ms": 500}')
    for pin in (14, 15):
        await uno.request(f"pin/{pin}/subscribe/set", "off")
        await uno.request(
            f"pin/{pin}/subscribe/set", '{"mode": "analog_poll", "interval_ms": 1000}'
        )
    assert len(uno.board.subscriptions.slots) == 8
    await uno.request("pin/16/subscribe/set", "off")
    report = await uno.refused("pin/16/subscribe/set", '{"mode": "analog_poll"}')
    assert (report["name"], report["message"]) == (
        "SUB_LIMIT_REACHED",
        "all 8 pin subscription slots of this board are used since its last reset (the "
        "firmware frees them only on RESET, quirk Q6; 8 slots inferred from max_payload 128)",
    )
    # edge subscriptions use no board slot
    assert (await uno.request("pin/16/subscribe/set", "change"))["ok"] is True
    await uno.request("pin/16/subscribe/set", "off")


async def test_config_subscriptions_after_every_handshake(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    pins = [
        {"pin": 14, "mode": "analog_poll", "interval_ms": 500, "threshold": 4},
        {"pin": 2, "mode": "change", "interval_ms": 50},
    ]
    async with rig(mqtt_broker, base_topic, tmp_path, pins=pins) as r:
        board = r.board
        board.set_pin(2, 1)
        # handshake order: HELLO, RESET, STREAM_STOP, then the configured subscriptions
        await wait_until(lambda: any(p.type == PacketType.PIN_READ for p in board.received))
        head = [(p.type, p.payload) for p in board.received if p.type != PacketType.PIN_READ]
        assert head[:4] == [
            (PacketType.HELLO, b""),
            (PacketType.RESET, b""),
            (PacketType.STREAM_STOP, b""),
            (PacketType.PIN_SUBSCRIBE, b"\x0e\x04\xf4\x01\x04\x00\x00"),
        ]
        await r.rec.wait_for(f"{r.p}/pin/2", payload=b"1")  # change: first reading
        # a mode set through the bridge is replayed after a reboot (the board forgets it)
        await r.request("pin/13/mode/set", "output")
        mark = r.mark()
        await r.pty.replug()  # new pty path, board rebooted, symlink moved
        await r.rec.wait_for_new(f"{r.p}/status", payload=b"online", timeout=10)
        await wait_until(lambda: PacketType.PIN_READ in {p.type for p in board.received[mark:]})
        after = [(t, pl) for t, pl in r.sent(mark) if t != PacketType.HELLO]
        assert after[:4] == [
            (PacketType.RESET, b""),
            (PacketType.STREAM_STOP, b""),
            (PacketType.PIN_MODE, b"\x0d\x01"),
            (PacketType.PIN_SUBSCRIBE, b"\x0e\x04\xf4\x01\x04\x00\x00"),
        ]
        assert board.pin_modes == {13: 1}
        board.set_pin(2, 0)
        await r.rec.wait_for_new(f"{r.p}/pin/2", payload=b"0", timeout=3)
