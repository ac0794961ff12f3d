"""Drive one Conduyt board with the asyncio library API (see docs/library.md).

    python examples/library_async.py [PORT]

PORT is a device path (/dev/ttyUSB0), socket://HOST:PORT, rfc2217://HOST:PORT,
tcp://HOST:PORT or sim://PROFILE; the default, sim://thermostat, needs no hardware. The
pins and datastreams used are those of the simulator's thermostat sketch: pin 1 is the
status LED (digital out, PWM), pin 4 the light sensor (digital and analog in, no PWM);
setpoint is a writable FLOAT32 in celsius, temperature is pushed every second.
"""

from __future__ import annotations

import asyncio
import sys

from conduyt_bridge import (
    ConduytCapabilityError,
    ConduytDevice,
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


async def main(port: str) -> int:
    device = ConduytDevice(
        port, timeout_ms=5000, on_connected=on_connected, on_disconnected=on_disconnected
    )
    try:
        hello = await device.connect()
    except ConduytError as exc:
        print(f"cannot connect to {port}: {exc}", file=sys.stderr)
        return 1
    try:
        names = ", ".join(ds.name for ds in hello.datastreams)
        print(
            f"connected: {hello.firmware_name} {hello.version_string}, "
            f"{len(hello.pins)} pins, datastreams: {names}"
        )
        await device.ping()
        print("ping: pong")
        await device.reset()
        print("reset: done")

        led = device.pin(1)
        await led.mode("output")
        await led.write(1)
        print(f"pin 1: output, wrote 1, reads {await led.read()}")
        try:
            await device.pin(4).mode("pwm")  # refused before anything is sent
        except ConduytCapabilityError as exc:
            print(f"pin 4 pwm refused: {exc}")
        light = device.pin("A0")
        print(f"pin A0 is pin {light.number}: {await light.read()} ADC counts")

        servo = ConduytServo(device, module_id=0)
        try:
            await servo.attach(9)
            await servo.write(90)
            print("servo: attached to pin 9, at 90 degrees")
        except ConduytCapabilityError as exc:
            print(f"servo refused: {exc}")

        await device.datastream("setpoint").write(22.5)
        print(f"setpoint: wrote {device.datastream('setpoint').value} celsius")
        async with asyncio.timeout(5), device.events() as events:
            async for event in events:
                if isinstance(event, DatastreamEvent) and event.name == "temperature":
                    print(f"event: temperature {event.value} {event.unit}")
                    break
        print(f"temperature value: {device.datastream('temperature').value} celsius")
    finally:
        await device.disconnect()
    print("disconnected")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "sim://thermostat")))
