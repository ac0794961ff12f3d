"""The command line: --version, --check, config errors (exit 2), SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from support.broker import Broker
from support.harness import spawn_cli
from support.recorder import Recorder

from conduyt_bridge.app.cli import main
from conduyt_bridge.northbound.conduyt.topics import default_bridge_id
from conduyt_bridge.version import __version__

BRIDGE_ID = default_bridge_id()
"""The test bridges' `[bridge] id`: the default, this host's name (`docs/fleet.md` §1)."""


def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "conduyt_bridge.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_version() -> None:
    code, out, _ = run_cli("--version")
    assert code == 0
    assert out.strip() == f"conduyt-bridge {__version__}"


def test_check_prints_devices_and_topics(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[bridge]\nbase_topic = "home"\n[mqtt]\npassword = "hunter2"\n'
        '[[devices]]\nid = "t1"\nport = "sim://thermostat"\n'
        '[[devices.pins]]\npin = 4\nmode = "analog_poll"\ninterval_ms = 250\n'
    )
    code, out, err = run_cli("--config", str(config), "--check")
    assert code == 0, err
    assert out.startswith("configuration OK")
    assert "hunter2" not in out
    assert "- t1: sim://thermostat (sim) [allow_raw]" in out
    assert (
        "datastream setpoint (rw): home/t1/ds/setpoint_celsius  "
        "set: home/t1/ds/setpoint_celsius/set"
    ) in out
    assert "datastream temperature (ro): home/t1/ds/temperature_celsius" in out
    assert "pin 4 analog_poll every 250 ms -> home/t1/pin/4" in out


def test_bad_config_exits_2_with_file_key_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[mqtt]\nurl = "http://broker"\n')
    code, out, err = run_cli("--config", str(config))
    assert code == 2
    assert out == ""
    assert "bad.toml: mqtt.url: " in err
    assert "mqtt:// or mqtts://" in err


def test_check_rejects_ambiguous_mcu_id_prefixes_on_one_listen_port(tmp_path: Path) -> None:
    config = tmp_path / "wifi.toml"
    config.write_text(
        '[[devices]]\nid = "a"\nport = "listen://0.0.0.0:5000"\nmcu_id = "a1b2"\n'
        '[[devices]]\nid = "b"\nport = "listen://0.0.0.0:5000"\nmcu_id = "a1b2c3d4e5f60000"\n'
    )
    code, out, err = run_cli("--config", str(config), "--check")
    assert code == 2
    assert out == ""
    assert (
        f"{config}: devices[1].mcu_id: mcu_id 'a1b2c3d4e5f60000' and 'a1b2' of devices[0] on "
        "the same listen port are ambiguous: one is a prefix of the other"
    ) in err


def test_missing_config_exits_2(tmp_path: Path) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "--check"]) == 2


async def test_sigterm_publishes_offline_and_exits_0(
    mqtt_broker: Broker, base_topic: str, tmp_path: Path
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        f'[bridge]\nbase_topic = "{base_topic}"\n'
        f'[mqtt]\nurl = "{mqtt_broker.url}"\nclient_id = "cli-{base_topic}"\n'
        "[homeassistant]\nenabled = false\n"
        '[[devices]]\nid = "sim1"\nport = "sim://thermostat"\n'
    )
    proc = await spawn_cli(config)
    try:
        async with Recorder(mqtt_broker, f"{base_topic}/#") as rec:
            await rec.wait_for(f"{base_topic}/sim1/status", payload=b"online", timeout=15)
            await rec.wait_for(f"{base_topic}/sim1/ds/temperature_celsius", timeout=5)
            mark = rec.mark()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 15)
            assert code == 0
            status = await rec.wait_for_after(mark, f"{base_topic}/sim1/status", timeout=5)
            assert status.payload == b"offline" and status.retain is True
            state = await rec.wait_for_after(
                mark, f"{base_topic}/bridge/{BRIDGE_ID}/state", timeout=5
            )
            assert state.payload == b"offline" and state.retain is True
        _, stderr = await proc.communicate()
        assert b"conduyt-bridge stopped" in stderr
        assert b"Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_check_refuses_what_would_fail_at_run_time(tmp_path: Path) -> None:
    """Issue 8 §5: unknown simulator profiles, unknown port schemes and missing TLS files
    fail `--check` (exit 2, one line per problem), not the daemon at 3 a.m."""
    config = tmp_path / "c.toml"
    config.write_text(
        '[mqtt]\ntls_ca = "missing-ca.pem"\n'
        f'tls_cert = "{tmp_path}/client.crt"\ntls_key = "{tmp_path}/client.key"\n'
        '[[devices]]\nid = "a"\nport = "sim://thermostatt"\n'
        '[[devices]]\nid = "b"\nport = "udp://192.0.2.7:5000"\n'
        '[[devices]]\nid = "c"\nport = "sockte://192.0.2.7:4000"\n'
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "conduyt_bridge.app.cli", "--config", "c.toml", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    schemes = "'listen://', 'rfc2217://', 'sim://', 'socket://', 'tcp://'"
    assert proc.stderr.splitlines() == [
        "conduyt-bridge: configuration error",
        "c.toml: mqtt.tls_ca: cannot read 'missing-ca.pem': No such file or directory; "
        f"relative paths are taken from the working directory '{tmp_path}'",
        f"c.toml: mqtt.tls_cert: cannot read '{tmp_path}/client.crt': "
        "No such file or directory; check the path",
        f"c.toml: mqtt.tls_key: cannot read '{tmp_path}/client.key': "
        "No such file or directory; check the path",
        "c.toml: devices[0].port: unknown simulator profile 'thermostatt' "
        "(did you mean 'thermostat'?); "
        "profiles: firehose, garage, kitchen, thermostat, uno, workshop",
        f"c.toml: devices[1].port: unknown port scheme 'udp://': use one of {schemes} "
        "or a serial device path (e.g. '/dev/ttyUSB0'); Conduyt runs over TCP: "
        "'tcp://host:port' for a board that accepts connections, 'listen://0.0.0.0:5000' "
        "for boards that connect to the bridge",
        f"c.toml: devices[2].port: unknown port scheme 'sockte://': use one of {schemes} "
        "or a serial device path (e.g. '/dev/ttyUSB0'); did you mean 'socket://'?",
    ]


def test_check_accepts_many_devices_on_one_sim_profile(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[[devices]]\nid = "t1"\nport = "sim://thermostat"\n'
        '[[devices]]\nid = "t2"\nport = "sim://thermostat"\n'
        '[[devices]]\nid = "t3"\nport = "sim://thermostat"\n'
    )
    assert main(["--config", str(config), "--check"]) == 0
