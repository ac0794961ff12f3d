"""Drive one Conduyt board without asyncio: the blocking library API (see docs/library.md).

    python examples/library_sync.py [PORT]

The same steps as examples/library_async.py, without `await`: ConduytDeviceSync runs the
device on its own thread, so this works from a plain script and from a Jupyter cell.
PORT as there; the default, sim://thermostat, needs no hardware. Pin 1 is the thermostat
sketch's status LED (digital out, PWM), pin 4 its light sensor (no PWM).
"""

from __future__ import annotations

import sys

from conduyt_bridge import (
    ConduytCapabilityError,
    ConduytDeviceSync,
    ConduytError,
    ConnectReason,
    DatastreamEvent,
    DisconnectReason,
)
from conduyt_bridge.modules import ConduytServo


def on_connected(reason: ConnectReason) -> None:
    print(f"callback: connected ({reason})")


def on_disconnected(reason: DisconnectReason) -> None:
    print(f"callback: disconnected ({reason})")


def main(port: str) -> int:
    device = ConduytDeviceSync(
        port, timeout_ms=5000, on_connected=on_connected, on_disconnected=on_disconnected
    )
    try:
        try:
            hello = device.connect()
        except ConduytError as exc:
            print(f"cannot connect to {port}: {exc}", file=sys.stderr)
            return 1
        names = ", ".join(ds.name for ds in hello.datastreams)
        print(
            f"connected: {hello.firmware_name} {hello.version_string}, "
            f"{len(hello.pins)} pins, datastreams: {names}"
        )
        device.ping()
        print("ping: pong")
        device.reset()
        print("reset: done")

        led = device.pin(1)
        led.mode("output")
        led.write(1)
        print(f"pin 1: output, wrote 1, reads {led.read()}")
        try:
            device.pin(4).mode("pwm")  # refused before anything is sent
        except ConduytCapabilityError as exc:
            print(f"pin 4 pwm refused: {exc}")
        light = device.pin("A0")
        print(f"pin A0 is pin {light.number}: {light.read()} ADC counts")

        servo = ConduytServo(device, module_id=0)
        try:
            servo.attach(9)
            servo.write(90)
            print("servo: attached to pin 9, at 90 degrees")
        except ConduytCapabilityError as exc:
            print(f"servo refused: {exc}")

        device.datastream("setpoint").write(22.5)
        print(f"setpoint: wrote {device.datastream('setpoint').value} celsius")
        with device.events() as events:
            while True:
                event = events.get(timeout_s=5)
                if isinstance(event, DatastreamEvent) and event.name == "temperature":
                    print(f"event: temperature {event.value} {event.unit}")
                    break
        print(f"temperature value: {device.datastream('temperature').value} celsius")
        device.disconnect()
        print("disconnected")
    finally:
        device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "sim://thermostat"))
