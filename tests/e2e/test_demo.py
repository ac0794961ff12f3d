"""`conduyt-bridge demo` (`conduyt_bridge/app/demo.py`): simulated boards, the bridge and a broker
in one command, printing the live feed."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from conduyt_bridge.app.demo import find_mosquitto, format_payload
from conduyt_bridge.northbound.conduyt.topics import default_bridge_id

BRIDGE_ID = default_bridge_id()
"""The test bridges' `[bridge] id`: the default, this host's name (`docs/fleet.md` §1)."""
STATE = f"conduyt/bridge/{BRIDGE_ID}/state"

HAS_AMQTT = importlib.util.find_spec("amqtt") is not None
FEED_HEADER = (
    "# boards: thermostat, kitchen (simulated); feed of conduyt/# follows "
    "(raw evt/ packets hidden: --raw shows them)"
)


def run_demo(*args: str) -> tuple[int, list[str], str]:
    """Run `conduyt-bridge demo ARGS` in a subprocess: (exit code, stdout lines, stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "conduyt_bridge.app.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, result.stdout.splitlines(), result.stderr


def assert_live_feed(lines: list[str], seconds: float) -> None:
    temperatures = [
        float(m.group(1))
        for line in lines
        if (m := re.fullmatch(r"conduyt/thermostat/ds/temperature_celsius  (\d+\.\d+)", line))
    ]
    # Pushed once a second by the simulated thermostat, around 21 °C.
    assert len(temperatures) >= seconds - 1, lines
    assert all(15.0 < t < 30.0 for t in temperatures)
    assert any(
        re.fullmatch(r"conduyt/thermostat/ds/humidity_percent  \d+(\.\d+)?", x) for x in lines
    )
    # Availability comes and goes in order; the bridge's own state is never blanked.
    assert lines.index(f"{STATE}  online") < lines.index(
        "conduyt/thermostat/status  online"
    )
    assert "conduyt/kitchen/status  online" in lines
    # After the stop, the last word on every availability topic is `offline` (a value
    # still in flight may arrive after it: only availability has a final state).
    assert lines[-1] == "# demo stopped"
    last = {topic: payload for topic, _, payload in (x.partition("  ") for x in lines)}
    assert last["conduyt/thermostat/status"] == "offline"
    assert last["conduyt/kitchen/status"] == "offline"
    assert last[STATE] == "offline"
    # The bridge's own state is never blanked (amqtt once handed the discovery sweep
    # retained messages it had not subscribed to, and the sweep cleared them).
    assert {p for t, _, p in (x.partition("  ") for x in lines) if t == STATE} == {
        "online",
        "offline",
    }
    assert not [x for x in lines if "/evt/" in x]  # raw packets are hidden by default
    hello = next(x for x in lines if x.startswith("conduyt/thermostat/hello  "))
    assert re.fullmatch(r"conduyt/thermostat/hello  <\d+ bytes: 43 44 .* …>", hello)


@pytest.mark.skipif(not HAS_AMQTT, reason="needs the demo extra: pip install '.[demo]'")
def test_demo_with_the_in_process_broker() -> None:
    code, lines, err = run_demo("--seconds", "4")
    assert code == 0, err
    assert lines[0].startswith("# broker: amqtt (in-process) on mqtt://127.0.0.1:")
    assert lines[0].endswith(" (MQTT 3.1.1)")
    assert re.fullmatch(r"# status page: http://127\.0\.0\.1:\d+/", lines[1])
    assert lines[2] == FEED_HEADER
    assert_live_feed(lines, 4)


@pytest.mark.skipif(find_mosquitto() is None, reason="needs a mosquitto binary")
def test_demo_with_a_local_mosquitto() -> None:
    code, lines, err = run_demo("--seconds", "3", "--broker", "mosquitto", "--http", "off")
    assert code == 0, err
    assert lines[0].startswith("# broker: mosquitto on mqtt://127.0.0.1:")
    assert lines[0].endswith(" (MQTT 5)")
    assert lines[1] == FEED_HEADER
    assert_live_feed(lines, 3)


@pytest.mark.skipif(HAS_AMQTT, reason="checks the message shown when amqtt is missing")
def test_demo_says_how_to_install_the_broker() -> None:
    code, lines, err = run_demo("--seconds", "1", "--broker", "amqtt")
    assert code == 1
    assert lines == []
    assert err == (
        "conduyt-bridge demo: amqtt, the in-process broker, is not installed: "
        "pip install 'conduyt-bridge[demo]'\n"
    )


def test_payloads_are_shown_on_one_line() -> None:
    assert format_payload(b"21.5") == "21.5"
    assert format_payload(b"") == "(empty)"
    assert format_payload("caf\u00e9".encode()) == "caf\u00e9"
    assert format_payload(b"two\nlines") == "<9 bytes: 74 77 6f 0a 6c 69 6e 65 73>"
    assert format_payload(bytes(range(20))) == (
        "<20 bytes: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …>"
    )
    long = format_payload(b"x" * 500)
    assert len(long) == 160
    assert long.endswith("…")
