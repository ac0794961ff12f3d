"""`ConduytDeviceSync`: the blocking API from a plain thread (a script) and from inside a
running event loop (a Jupyter cell), against in-process simulated boards."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from conduyt_bridge import (
    ConduytCapabilityError,
    ConduytDeviceSync,
    ConduytDisconnectedError,
    ConduytOTA,
    ConnectReason,
    DatastreamEvent,
    DisconnectReason,
)
from conduyt_bridge.modules import ConduytDHT, ConduytServo
from conduyt_bridge.protocol.constants import PinMode
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.transports import SimTransport


def device_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("conduyt-")]


def drive(port: str, out: dict[str, object]) -> None:
    """What a plain script does: no event loop of its own anywhere."""
    transport = SimTransport(port, push_interval_s=0.05)
    board = transport.board
    assert isinstance(board, SimulatedBoard)
    with ConduytDeviceSync(transport, keepalive_s=0) as device:
        out["firmware"] = device.capabilities.firmware_name if device.capabilities else None
        device.ping()
        out["read"] = device.pin(1).mode("output").write(1) or device.pin(1).read()
        out["mode"] = board.pin_modes[1]
        try:
            device.pin(4).mode("pwm")
        except ConduytCapabilityError as exc:
            out["refused"] = str(exc)
        device.datastream("setpoint").write(21.5)
        out["setpoint"] = device.datastream("setpoint").value
        with device.events() as events:
            out["event"] = next(e for e in events if isinstance(e, DatastreamEvent))
    out["connected_after"] = device.connected


def test_from_a_plain_thread() -> None:
    out: dict[str, object] = {}
    worker = threading.Thread(target=drive, args=("sim://thermostat", out))
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert out["firmware"] == "sim-thermostat"
    assert out["read"] == 1 and out["mode"] is PinMode.OUTPUT
    assert out["refused"] == "pin 4 supports input, analog, input_pullup; not pwm (pwm pins: 1, 2)"
    assert out["setpoint"] == 21.5
    assert isinstance(out["event"], DatastreamEvent)
    assert out["connected_after"] is False
    assert device_threads() == []  # close() stopped the device's thread


async def test_from_inside_a_running_event_loop() -> None:
    # As in a Jupyter cell: this coroutine runs on a loop in the main thread, and the
    # blocking calls below must not need that loop.
    out: dict[str, object] = {}
    drive("thermostat", out)
    assert out["read"] == 1 and out["setpoint"] == 21.5
    reasons: list[object] = []
    device = ConduytDeviceSync(
        "sim://kitchen", keepalive_s=0, on_connected=reasons.append, on_disconnected=reasons.append
    )
    try:
        hello = device.connect()
        assert hello.firmware_name == "sim-kitchen" and device.connected
        servo = ConduytServo(device)
        assert servo.module_id == 0
        assert servo.attach(1) is None
        servo.write(45)
        dht = ConduytDHT(device)
        dht.begin(4)
        assert 10.0 <= dht.read().temperature <= 35.0
        with pytest.raises(ConduytCapabilityError, match="not output"):
            servo.attach(3)
        device.disconnect()
        assert device.capabilities is None
        device.connect()  # connects again after a disconnect
    finally:
        device.close()
    device.close()  # idempotent
    assert reasons == [
        ConnectReason.REQUEST,
        DisconnectReason.REQUEST,
        ConnectReason.REQUEST,
        DisconnectReason.REQUEST,
    ]
    with pytest.raises(ConduytDisconnectedError, match="the device was closed"):
        device.ping()


def test_blocking_calls_from_a_callback_are_refused() -> None:
    errors: list[BaseException] = []
    device: ConduytDeviceSync

    def on_connected(reason: ConnectReason) -> None:
        try:
            device.ping()  # would wait for its own thread
        except RuntimeError as exc:
            errors.append(exc)

    device = ConduytDeviceSync("sim://uno", keepalive_s=0, on_connected=on_connected)
    with device:
        device.ping()
    assert len(errors) == 1
    assert "called on the device's own thread" in str(errors[0])


def test_a_forgotten_device_is_disconnected_and_its_thread_stopped() -> None:
    # A re-run Jupyter cell drops the previous device without close(): the port must not
    # stay held, nor the thread run (review finding 6).
    device = ConduytDeviceSync("sim://thermostat", keepalive_s=0)
    device.connect()
    inner = device._device
    assert inner.connected and device_threads() != []
    del device
    gc.collect()
    deadline = time.monotonic() + 5
    while device_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert device_threads() == []
    assert not inner.connected and inner._context.session is None


def test_event_streams_after_the_end_and_after_close() -> None:
    device = ConduytDeviceSync("sim://thermostat", keepalive_s=0)
    device.connect()
    events = device.events()
    device.disconnect()
    with pytest.raises(ConduytDisconnectedError, match="event stream ended"):
        events.get(1)  # not StopIteration outside the iterator protocol (finding 12)
    device.connect()
    events = device.events()
    device.close()
    events.close()  # the device is closed: nothing to do (finding 13)
    with pytest.raises(StopIteration):
        next(events)
    assert list(events) == []


def test_sync_module_wrappers_are_instances_and_bad_devices_a_type_error() -> None:
    with ConduytDeviceSync("sim://kitchen", keepalive_s=0) as device:
        servo = ConduytServo(device)
        assert isinstance(servo, ConduytServo)
        servo.attach(1)
        ota = ConduytOTA(device)
        assert isinstance(ota, ConduytOTA)
    with pytest.raises(TypeError, match="ConduytServo takes a ConduytDevice or a Conduyt"):
        ConduytServo("sim://kitchen")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ConduytOTA takes a ConduytDevice"):
        ConduytOTA(object())  # type: ignore[arg-type]
