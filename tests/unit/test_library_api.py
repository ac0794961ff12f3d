"""The library API (`ConduytDevice`) against simulated boards served in-process (`sim://`):
handshake, pins, datastreams, events, modules, OTA, callbacks and reconnection. Every
refusal is checked to send nothing (the board's `received` list does not grow)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conduyt_bridge import (
    ConduytCapabilityError,
    ConduytDevice,
    ConduytDisconnectedError,
    ConduytPayloadError,
    ConnectReason,
    DatastreamEvent,
    DisconnectReason,
    ModuleEvent,
    PinEvent,
    open_device,
)
from conduyt_bridge.app.config import DeviceConfig
from conduyt_bridge.device.event_stream import EventHub
from conduyt_bridge.device.events import LogEvent, LogSource, event_from_packet
from conduyt_bridge.device.ota import ConduytOTA
from conduyt_bridge.device.session_config import SessionOptions
from conduyt_bridge.errors import ErrorName
from conduyt_bridge.modules import (
    ConduytDHT,
    ConduytEncoder,
    ConduytNeoPixel,
    ConduytOLED,
    ConduytPID,
    ConduytServo,
    ConduytStepper,
    DHTReading,
)
from conduyt_bridge.protocol.constants import PacketType, PinMode
from conduyt_bridge.protocol.packet import Packet
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.transports import (
    SerialTransport,
    SimTransport,
    TcpTransport,
    transport_for_url,
)

T = PacketType


@contextlib.asynccontextmanager
async def connected(
    profile: str = "thermostat", push_interval_s: float | None = None, **options: Any
) -> AsyncIterator[tuple[ConduytDevice, SimulatedBoard]]:
    transport = SimTransport(profile, push_interval_s=push_interval_s)
    options.setdefault("keepalive_s", 0)
    device = ConduytDevice(transport, **options)
    await device.connect()
    assert isinstance(transport.board, SimulatedBoard)
    try:
        yield device, transport.board
    finally:
        await device.disconnect()


@contextlib.contextmanager
def nothing_sent(board: SimulatedBoard) -> Any:
    before = len(board.received)
    yield
    assert board.received[before:] == []


async def wait_until(condition: Any, timeout_s: float = 3.0) -> None:
    # The conditions are plain state of the board or of callbacks: nothing to await.
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# ------------------------------------------------------------------------ connection


async def test_connect_returns_the_hello_resp_and_disconnect_forgets_it() -> None:
    device = ConduytDevice("sim://thermostat", keepalive_s=0)
    assert not device.connected and device.capabilities is None
    hello = await device.connect()
    assert device.connected and device.capabilities is hello and device.hello is hello
    assert hello.firmware_name == "sim-thermostat"
    assert hello.firmware_version == (1, 2, 0)
    assert hello.mcu_id == bytes.fromhex("240ac41234560000")
    assert hello.ota_capable is True
    assert len(hello.pins) == 8
    assert (hello.i2c_buses, hello.spi_buses, hello.uart_count) == (1, 0, 1)
    assert hello.max_payload == 512
    assert hello.modules == ()
    assert [d.name for d in hello.datastreams] == ["temperature", "humidity", "setpoint", "heater"]
    assert await device.connect() is hello  # already connected: the same HELLO_RESP
    board = device.transport.board  # type: ignore[attr-defined]
    assert [p.type for p in board.received] == [T.HELLO, T.RESET, T.STREAM_STOP]
    await device.ping()
    await device.reset()
    assert [p.type for p in board.received[3:]] == [T.PING, T.RESET]
    await device.disconnect()
    assert not device.connected and device.capabilities is None
    with pytest.raises(ConduytDisconnectedError, match="is not connected: call connect"):
        await device.ping()


async def test_open_device_connects_and_disconnects() -> None:
    async with open_device("sim://uno", keepalive_s=0) as device:
        assert device.connected
        assert device.capabilities is not None
        assert device.capabilities.firmware_name == "sim-uno"
    assert not device.connected


async def test_connect_to_a_missing_port_raises_disconnected_with_the_os_error() -> None:
    calls: list[object] = []
    device = ConduytDevice(
        "/dev/nonexistent-conduyt", on_connected=calls.append, on_disconnected=calls.append
    )
    with pytest.raises(ConduytDisconnectedError) as info:
        await device.connect()
    assert str(info.value) == (
        "cannot open /dev/nonexistent-conduyt: [Errno 2] No such file or directory: "
        "'/dev/nonexistent-conduyt'"
    )
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert not device.connected and calls == []


def test_session_options_default_to_the_daemon_settings() -> None:
    daemon = DeviceConfig(id="x", port="sim://uno")
    keys = (
        "command_timeout_ms",
        "hello_timeout_ms",
        "keepalive_s",
        "keepalive_misses",
        "read_coalesce_ms",
        "reconnect_min_s",
        "reconnect_max_s",
    )
    assert {k: getattr(SessionOptions(), k) for k in keys} == {k: getattr(daemon, k) for k in keys}
    with pytest.raises(ValueError, match=r"need 0 < reconnect_min_s <= reconnect_max_s"):
        SessionOptions(reconnect_min_s=2, reconnect_max_s=1)
    with pytest.raises(ValueError, match="command_timeout_ms and hello_timeout_ms must be > 0"):
        SessionOptions(command_timeout_ms=0)
    # The library's own argument names, not the session's (review finding 16).
    with pytest.raises(ValueError, match=r"^timeout_ms must be an integer > 0 \(ms\), got 0$"):
        ConduytDevice("sim://uno", timeout_ms=0)
    with pytest.raises(ValueError, match=r"^hello_timeout_ms must be an integer > 0"):
        ConduytDevice("sim://uno", hello_timeout_ms=-5)


def test_port_urls_pick_their_transport() -> None:
    serial = transport_for_url("/dev/ttyUSB0", baudrate=9600)
    assert serial == SerialTransport("/dev/ttyUSB0", baudrate=9600)
    assert isinstance(transport_for_url("socket://gw:4000"), SerialTransport)
    assert isinstance(transport_for_url("rfc2217://gw:4001"), SerialTransport)
    tcp = transport_for_url("tcp://192.168.1.50:5000")
    assert isinstance(tcp, TcpTransport) and (tcp.host, tcp.port) == ("192.168.1.50", 5000)
    assert TcpTransport("::1", 5000).description == "tcp://[::1]:5000"
    assert TcpTransport("board.local:5000").description == "tcp://board.local:5000"
    sim = transport_for_url("sim://uno")
    assert isinstance(sim, SimTransport) and sim.profile == "uno"
    assert sim.description == SimTransport("uno").description == "sim://uno"
    with pytest.raises(ValueError, match="expected tcp://HOST:PORT, got 'tcp://board'"):
        transport_for_url("tcp://board")
    with pytest.raises(ValueError, match=r"unsupported port URL 'listen://0\.0\.0\.0:5000'"):
        transport_for_url("listen://0.0.0.0:5000")
    with pytest.raises(KeyError, match="unknown simulator profile 'toaster'"):
        transport_for_url("sim://toaster")


# ------------------------------------------------------------------------ pins


async def test_pin_mode_write_read_send_the_mode_byte() -> None:
    async with connected() as (device, board):
        led = device.pin(1)
        assert await led.mode("output") is led
        await led.write(1)
        assert board.received[-1].payload == bytes((1, 1, PinMode.OUTPUT))
        assert board.pin_modes[1] is PinMode.OUTPUT and board.pin_values[1] == 1
        assert await led.read() == 1
        assert await led.digital_read() == 1
        assert led.current_mode == "output"
        heater = device.pin("2")
        await heater.mode("PWM")
        await heater.write(128)
        assert board.received[-1].payload == bytes((2, 128, PinMode.PWM))
        assert board.pin_values[2] == 128
        light = device.pin("A0")
        assert light.number == 4 and device.pin("a1").number == 5
        reading = await light.read()
        assert board.received[-1].payload == bytes((4, PinMode.ANALOG))
        assert 0 <= reading <= 4095
        assert 0 <= await device.pin(5).analog_read() <= 4095


async def test_pin_refusals_send_nothing() -> None:
    async with connected() as (device, board):
        cases: list[tuple[Any, type[Exception], str, str]] = [
            (
                device.pin(4).mode("pwm"),
                ConduytCapabilityError,
                "pin 4 supports input, analog, input_pullup; not pwm (pwm pins: 1, 2)",
                ErrorName.PIN_MODE_UNSUPPORTED,
            ),
            (
                device.pin(42).write(1),
                ConduytCapabilityError,
                "pin 42 does not exist: this board has 8 pins",
                ErrorName.INVALID_PIN,
            ),
            (
                device.pin(3).write(1),
                ConduytCapabilityError,
                "pin 3 supports input, input_pullup; not output (output pins: 0, 1, 2, 6, 7)",
                ErrorName.PIN_MODE_UNSUPPORTED,
            ),
            (
                device.pin(1).write(256),
                ConduytCapabilityError,
                "pin 1 takes a PWM duty cycle 0..255, got 256",
                ErrorName.OUT_OF_RANGE,
            ),
            (
                device.pin(1).read("analog"),
                ConduytCapabilityError,
                "pin 1 has no analog input (analog pins: 4, 5)",
                ErrorName.PIN_MODE_UNSUPPORTED,
            ),
            (
                device.pin("A2").read(),
                ConduytCapabilityError,
                "pin A2 does not exist: this board has 2 analog inputs (A0 = 4, A1 = 5)",
                ErrorName.INVALID_PIN,
            ),
            (
                device.pin(1).mode("blink"),
                ConduytPayloadError,
                "unknown pin mode 'blink': expected input, output, pwm, analog, input_pullup",
                ErrorName.BAD_MODE,
            ),
        ]
        with nothing_sent(board):
            for call, error, message, name in cases:
                with pytest.raises(error) as info:
                    await call
                assert (str(info.value), info.value.name) == (message, name)  # type: ignore[attr-defined]
        await device.pin(0).mode("input")
        with nothing_sent(board), pytest.raises(ConduytCapabilityError) as info:
            await device.pin(0).write(1)
        assert str(info.value) == "pin 0 is in input mode: set mode output first"


async def test_analog_subscription_events_and_leaking_slots() -> None:
    async with connected("uno") as (device, board):
        async with device.events() as events:
            await device.pin("A0").subscribe(interval_ms=20)
            event = await events.get(timeout_s=2)
        assert isinstance(event, PinEvent) and event.pin == 14 and 0 <= event.value <= 1023
        await device.pin(14).unsubscribe()
        # Each subscribe after an unsubscribe takes a new slot (Q6): 8 in all on AVR.
        for _ in range(7):
            await device.pin(15).subscribe(1000)
            await device.pin(15).unsubscribe()
        with nothing_sent(board), pytest.raises(ConduytCapabilityError) as info:
            await device.pin(16).subscribe(1000)
        assert info.value.name == ErrorName.SUB_LIMIT_REACHED
        assert str(info.value).startswith("all 8 pin subscription slots of this board are used")
        await device.reset()  # frees them
        await device.pin(16).subscribe(1000)
        with nothing_sent(board), pytest.raises(ConduytCapabilityError) as info:
            await device.pin(3).subscribe()
        assert str(info.value) == (
            "pin 3 has no analog input: analog_poll needs ANALOG_IN "
            "(analog pins: 14, 15, 16, 17, 18, 19)"
        )
        with nothing_sent(board), pytest.raises(ConduytCapabilityError) as info:
            await device.pin(17).unsubscribe()
        assert str(info.value) == "pin 17 has no subscription to stop"


# ------------------------------------------------------------------------ datastreams


async def test_datastream_write_is_checked_then_sent() -> None:
    async with connected() as (device, board):
        setpoint = device.datastream("setpoint")
        assert setpoint.value is None
        await setpoint.write(22.5)
        assert board.written[-1] == ("setpoint", 22.5)
        assert setpoint.value == 22.5 and device.datastream("setpoint").value == 22.5
        await device.datastream("heater").write(True)
        assert board.written[-1] == ("heater", True)
        assert setpoint.descriptor.unit == "celsius"
        cases: list[tuple[str, object, str, str]] = [
            ("temperature", 20.0, "datastream 'temperature' is read-only", "DATASTREAM_READONLY"),
            (
                "setpoint",
                "hot",
                "datastream 'setpoint' (FLOAT32) takes a number, not 'hot'",
                "OUT_OF_RANGE",
            ),
            (
                "setpoint",
                1e10,
                "datastream 'setpoint' (FLOAT32): 10000000000.0 is out of range "
                "-1000000000..1000000000",
                "OUT_OF_RANGE",
            ),
            ("heater", 1, "datastream 'heater' (BOOL) takes true or false, not 1", "OUT_OF_RANGE"),
            (
                "nope",
                1,
                "datastream 'nope' does not exist on this board "
                "(datastreams: temperature, humidity, setpoint, heater)",
                "UNKNOWN_DATASTREAM",
            ),
        ]
        with nothing_sent(board):
            for name, value, message, error_name in cases:
                with pytest.raises(ConduytCapabilityError) as info:
                    await device.datastream(name).write(value)  # type: ignore[arg-type]
                assert (str(info.value), info.value.name) == (message, error_name)


async def test_events_are_typed_and_datastreams_keep_the_last_value() -> None:
    async with connected(push_interval_s=0.05) as (device, _board):
        seen: list[DatastreamEvent] = []
        async with device.events() as events:
            async for event in events:
                assert isinstance(event, DatastreamEvent)
                seen.append(event)
                if {e.name for e in seen} == {"temperature", "humidity"}:
                    break
        last = {e.name: e for e in seen}
        assert last["temperature"].unit == "celsius" and last["humidity"].unit == "%"
        assert last["temperature"].index == 0 and len(last["temperature"].raw) == 4
        assert device.datastream("temperature").value == last["temperature"].value
        assert isinstance(last["humidity"].value, float)


async def test_log_lines_and_packets_are_log_events() -> None:
    async with connected() as (device, board), device.events() as events:
        board.faults.print_lines.append("heater on")  # Serial.println between frames
        event = await events.get(timeout_s=2)
        while not isinstance(event, LogEvent):
            event = await events.get(timeout_s=2)
        assert event == LogEvent("heater on", LogSource.SERIAL)
    hello = board.hello
    assert event_from_packet(hello, Packet(T.LOG, 0, b"boot ok")) == LogEvent(
        "boot ok", LogSource.LOG
    )
    assert event_from_packet(hello, Packet(T.FATAL, 0, b"\xffoops")) == LogEvent(
        "\ufffdoops", LogSource.FATAL
    )
    assert event_from_packet(hello, Packet(T.DS_EVENT, 0, b"\x09\x00")) is None  # no ds 9
    assert event_from_packet(hello, Packet(T.PIN_EVENT, 0, b"\x04")) is None  # too short
    assert event_from_packet(hello, Packet(T.STREAM_DATA, 0, b"\x00\x00")) is None


async def test_a_slow_consumer_loses_the_oldest_events_and_counts_them() -> None:
    hub = EventHub()
    stream = hub.open(maxsize=2)
    for value in range(5):
        hub.publish(PinEvent(4, value))
    assert stream.dropped == 3 and stream.pending == 2
    hub.finish_all()
    assert [e async for e in stream] == [PinEvent(4, 3), PinEvent(4, 4)]
    with pytest.raises(ValueError, match="maxsize must be >= 1, got 0"):
        hub.open(maxsize=0)
    async with connected(push_interval_s=0.01) as (device, _), device.events(maxsize=1) as events:
        await wait_until(lambda: events.dropped >= 3)
        assert events.pending == 1


# ------------------------------------------------------------------------ modules


async def test_kitchen_modules_by_name_and_by_id() -> None:
    async with connected("kitchen") as (device, board):
        servo = ConduytServo(device)
        assert servo.module_id == 0
        await servo.attach(1)
        await servo.write(90)
        assert board.received[-2].payload == bytes((0, 0x01, 1, 0x20, 0x02, 0x60, 0x09))
        await servo.write_microseconds(1500)
        assert (board.modules[0].pin, board.modules[0].pulse_us) == (1, 1500)  # type: ignore[attr-defined]
        pixels = ConduytNeoPixel(device, module_id=1)
        await pixels.begin(2, 3)
        await pixels.set_pixel(0, 255, 0, 0)
        await pixels.fill(0, 0, 9)
        await pixels.set_range(1, 1, 1, 2, 3)
        await pixels.show()
        await pixels.set_brightness(10)
        neopixel = board.modules[1]
        assert neopixel.shown == [(0, 0, 9, 0), (1, 2, 3, 0), (0, 0, 9, 0)]  # type: ignore[attr-defined]
        assert neopixel.brightness == 10  # type: ignore[attr-defined]
        dht = ConduytDHT(device)
        await dht.begin(4)
        reading = await dht.read()
        assert isinstance(reading, DHTReading) and 10.0 <= reading.temperature <= 35.0
        assert 20.0 <= reading.humidity <= 90.0
        with nothing_sent(board):
            for call, message, error_name in [
                (
                    ConduytServo(device, module_id=1).write(90),
                    "module 1 on this board is neopixel, not servo "
                    "(modules: 0 servo, 1 neopixel, 2 dht)",
                    ErrorName.MODULE_NOT_LOADED,
                ),
                (
                    ConduytServo(device, module_id=7).detach(),
                    "no module with id 7 on this board (modules: 0 servo, 1 neopixel, 2 dht)",
                    ErrorName.MODULE_NOT_LOADED,
                ),
                (
                    servo.attach(3),
                    "servo.attach: pin 3 supports input, input_pullup; not output "
                    "(output pins: 0, 1, 2, 4, 5, 6, 7, 8, 9)",
                    ErrorName.PIN_MODE_UNSUPPORTED,
                ),
                (
                    ConduytStepper(device).stop(),
                    "this board has no stepper module (modules: 0 servo, 1 neopixel, 2 dht)",
                    ErrorName.MODULE_NOT_LOADED,
                ),
            ]:
                with pytest.raises(ConduytCapabilityError) as info:
                    await call
                assert (str(info.value), info.value.name) == (message, error_name)
            with pytest.raises(ConduytPayloadError) as payload_info:
                await servo.write(200)
            assert str(payload_info.value) == (
                "servo.write: angle must be an integer 0..180, got 200"
            )
            assert payload_info.value.name == ErrorName.BAD_ARGUMENT


async def test_workshop_modules_and_their_events() -> None:
    async with connected("workshop") as (device, board):
        async with device.events() as events:
            encoder = ConduytEncoder(device)
            await encoder.attach(0, 1)
            board.modules[0].turn(2)  # type: ignore[attr-defined]
            ticks = [await events.get(timeout_s=2) for _ in range(2)]
            assert ticks == [
                ModuleEvent(0, "encoder", "tick", 1, {"count": 1, "delta": 1}, ticks[0].data),  # type: ignore[union-attr]
                ModuleEvent(0, "encoder", "tick", 1, {"count": 2, "delta": 1}, ticks[1].data),  # type: ignore[union-attr]
            ]
            assert await encoder.read() == 2
            await encoder.reset()
            assert await encoder.read() == 0
            stepper = ConduytStepper(device)
            await stepper.config(2, 3)
            assert board.received[-1].payload == bytes((1, 0x01, 2, 3, 0xFF, 200, 0))
            await stepper.move(20, 2000)
            done = await events.get(timeout_s=2)
            assert done == ModuleEvent(1, "stepper", "done", 1, {"position": 20}, done.data)  # type: ignore[union-attr]
            await stepper.move_to(0)
            await stepper.stop()
        oled = ConduytOLED(device)
        await oled.begin()
        await oled.clear()
        await oled.text(0, 0, 1, "hi")
        await oled.draw_rect(0, 0, 8, 8, fill=True)
        await oled.draw_bitmap(0, 0, 8, 1, b"\xff")
        await oled.show()
        pid = ConduytPID(device)
        await pid.config(1.0, 0.5, 0.0)
        await pid.set_target(50.0)
        await pid.set_input(12)
        await pid.set_output(0)
        await pid.enable()
        await pid.disable()
        assert board.received[-1].payload == bytes((3, 0x05, 0))
        with nothing_sent(board), pytest.raises(ConduytCapabilityError) as info:
            await pid.set_input(0)
        assert str(info.value) == (
            "pid.set_input: pin 0 supports input, output, pwm, input_pullup; not analog "
            "(analog pins: 12, 13, 14)"
        )


# ------------------------------------------------------------------------ OTA


async def test_ota_flash_in_chunks_and_refusals() -> None:
    async with connected() as (device, board):
        progress: list[tuple[int, int]] = []
        image = bytes(range(256)) * 4
        await ConduytOTA(device).flash(image, on_progress=lambda s, t: progress.append((s, t)))
        assert board.ota_image == image
        assert progress == [(504, 1024), (1008, 1024), (1024, 1024)]  # 512 - 4 - 4 per chunk
        with nothing_sent(board), pytest.raises(ConduytPayloadError) as info:
            await device.ota_begin(10, b"\x00" * 31)
        assert str(info.value) == (
            "OTA_BEGIN payload must be 36 bytes [total_bytes u32le, sha256 x 32], got 35"
        )
    async with connected("uno") as (device, board):
        with nothing_sent(board), pytest.raises(ConduytCapabilityError) as cap:
            await device.ota_finalize()
        assert str(cap.value) == (
            "this board's firmware was built without OTA support (ota_capable = 0)"
        )


# ------------------------------------------------------------------------ callbacks


async def test_callbacks_get_reasons_and_a_silent_board_is_lost() -> None:
    calls: list[object] = []
    awaited: list[object] = []

    async def on_disconnected(reason: DisconnectReason) -> None:
        await asyncio.sleep(0)
        awaited.append(reason)

    def on_connected(reason: ConnectReason) -> None:
        calls.append(reason)
        raise RuntimeError("a broken callback is logged, not raised")

    transport = SimTransport("thermostat")
    device = ConduytDevice(
        transport,
        timeout_ms=300,
        keepalive_s=0.1,
        keepalive_misses=2,
        on_connected=on_connected,
        on_disconnected=on_disconnected,
    )
    await device.connect()
    assert calls == [ConnectReason.REQUEST] and device.connected
    events = device.events()
    assert isinstance(transport.board, SimulatedBoard)
    transport.board.faults.silent = True
    await wait_until(lambda: awaited == [DisconnectReason.LOST])
    assert not device.connected
    assert device.capabilities is not None  # kept: it is the last known board
    assert [e async for e in events] == []  # no auto-reconnect: the iterator ends
    await device.disconnect()  # not connected any more: no second callback
    await asyncio.sleep(0.05)
    assert awaited == [DisconnectReason.LOST]


async def test_auto_reconnect_replays_pin_modes_and_subscriptions() -> None:
    reasons: list[object] = []
    transport = SimTransport("thermostat")
    device = ConduytDevice(
        transport,
        timeout_ms=300,
        keepalive_s=0.1,
        keepalive_misses=2,
        reconnect_min_s=0.05,
        auto_reconnect=True,
        on_connected=reasons.append,
        on_disconnected=reasons.append,
    )
    board = transport.board
    assert isinstance(board, SimulatedBoard)
    async with device:
        await device.pin(1).mode("output")
        await device.pin(5).subscribe(1000)
        board.faults.silent = True
        await wait_until(lambda: DisconnectReason.LOST in reasons)
        board.reboot()  # forgets pin modes and subscriptions
        board.faults.clear()
        await wait_until(lambda: ConnectReason.AUTO_RECONNECT in reasons)
        assert device.connected
        assert board.pin_modes[1] is PinMode.OUTPUT
        assert board.subscriptions.active(5) is not None
    assert reasons == [
        ConnectReason.REQUEST,
        DisconnectReason.LOST,
        ConnectReason.AUTO_RECONNECT,
        DisconnectReason.REQUEST,
    ]
