"""Tests for conduyt_bridge.app.config: loading, env overrides, validation messages, device ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conduyt_bridge.app.config import (
    ConfigError,
    DeviceConfig,
    HttpSection,
    MqttSection,
    Settings,
    load_settings,
    redacted_dump,
)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={} if env is None else env)
    return info.value


EXAMPLE = """
[bridge]
base_topic = "home/conduyt"
log_level = "debug"

[mqtt]
url = "mqtts://broker.example:8884"
username = "bridge"

[homeassistant]
discovery_prefix = "ha"

[[devices]]
id = "greenhouse"
port = "/dev/serial/by-id/usb-Arduino_Uno_1234-if00"

  [[devices.pins]]
  pin = 14
  mode = "analog_poll"
  interval_ms = 500
  threshold = 4

  [devices.datastreams.temperature]
  expire_after_s = 120
  name = "Greenhouse temperature"

[[devices]]
port = "sim://thermostat"
"""


# --------------------------------------------------------------------------- happy path


def test_loads_example(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE), env={})

    assert isinstance(settings, Settings)
    assert settings.bridge.base_topic == "home/conduyt"
    assert settings.bridge.log_level == "debug"
    assert settings.mqtt.host == "broker.example"
    assert settings.mqtt.port == 8884
    assert settings.mqtt.tls is True
    assert settings.mqtt.resolved_password() == ""
    assert settings.homeassistant.discovery_prefix == "ha"
    assert settings.http.enabled is False
    green, sim = settings.devices
    assert green.device_id == "greenhouse"
    assert green.port_kind == "serial"
    assert green.pins[0].mode == "analog_poll"
    assert green.pins[0].interval_ms == 500
    assert green.datastreams["temperature"].expire_after_s == 120
    assert sim.device_id == "thermostat"
    assert sim.port_kind == "sim"
    assert sim.sim_profile == "thermostat"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})

    assert settings.bridge.base_topic == "conduyt"
    assert settings.mqtt.url == "mqtt://localhost:1883"
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.tls) == ("localhost", 1883, False)
    assert settings.mqtt.protocol == "5"
    assert settings.homeassistant.enabled is True
    assert settings.devices == []


def test_str_path_accepted(tmp_path: Path) -> None:
    assert load_settings(str(write(tmp_path, "")), env={}).devices == []


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker", "broker", 1883, False),
        ("mqtts://broker", "broker", 8883, True),
        ("mqtt://broker:1884", "broker", 1884, False),
        ("mqtts://[::1]:8884", "::1", 8884, True),
    ],
)
def test_mqtt_url_properties(url: str, host: str, port: int, tls: bool) -> None:
    mqtt = MqttSection(url=url)
    assert (mqtt.host, mqtt.port, mqtt.tls) == (host, port, tls)


def test_tls_ca_turns_tls_on_and_default_port(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    mqtt = MqttSection(url="mqtt://broker", tls_ca=ca)
    assert mqtt.tls is True
    assert mqtt.port == 8883


def test_protocol_accepts_toml_integer(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[mqtt]\nprotocol = 5\n"), env={})
    assert settings.mqtt.protocol == "5"


def test_http_listen(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[http]\nlisten = "[::]:9100"\ntoken = "0123456789abcdef"\n'), env={}
    )
    assert settings.http.enabled is True
    assert (settings.http.host, settings.http.port) == ("::", 9100)
    wildcard = HttpSection(listen=":8080", token="0123456789abcdef")
    assert (wildcard.host, wildcard.port) == ("", 8080)


# --------------------------------------------------------------------------- env overrides


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nurl = "mqtt://file:1883"\nusername = "u"\n')
    env = {
        "CONDUYT_BRIDGE_MQTT__URL": "mqtt://broker:1884",
        "CONDUYT_BRIDGE_MQTT__PASSWORD": "secret",
        "CONDUYT_BRIDGE_BRIDGE__BASE_TOPIC": "x",
    }

    settings = load_settings(path, env=env)

    assert settings.mqtt.url == "mqtt://broker:1884"
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker", 1884)
    assert settings.mqtt.resolved_password() == "secret"
    # Other keys of the same section still come from the file.
    assert settings.mqtt.username == "u"
    assert settings.bridge.base_topic == "x"


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUYT_BRIDGE_MQTT__URL", "mqtt://from-os:1999")
    settings = load_settings(write(tmp_path, '[mqtt]\nurl = "mqtt://file"\n'))
    assert settings.mqtt.port == 1999


def test_env_mapping_ignores_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDUYT_BRIDGE_MQTT__URL", "mqtt://from-os:1999")
    settings = load_settings(write(tmp_path, '[mqtt]\nurl = "mqtt://file"\n'), env={})
    assert settings.mqtt.host == "file"


def test_env_replaces_device_list(tmp_path: Path) -> None:
    devices = [{"id": "a", "port": "sim://kitchen"}]
    env = {"CONDUYT_BRIDGE_DEVICES": json.dumps(devices)}
    settings = load_settings(write(tmp_path, EXAMPLE), env=env)
    assert [d.device_id for d in settings.devices] == ["a"]


def test_env_error_names_the_variable(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, ""), {"CONDUYT_BRIDGE_MQTT__URL": "http://x"})
    assert str(err) == (
        "env CONDUYT_BRIDGE_MQTT__URL: mqtt.url: scheme must be mqtt:// or mqtts:// "
        "(got 'http://x')"
    )


def test_env_bad_json(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, ""), {"CONDUYT_BRIDGE_DEVICES": "not json"})
    assert str(err) == (
        "env CONDUYT_BRIDGE_DEVICES: devices: cannot parse the value from the environment "
        "(a list or table must be JSON)"
    )


# --------------------------------------------------------------------------- password


def test_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("  s3cret\n", encoding="utf-8")
    path = write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n')

    settings = load_settings(path, env={})

    assert settings.mqtt.resolved_password() == "s3cret"
    assert settings.mqtt.password.get_secret_value() == ""


def test_password_file_unreadable(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    path = write(tmp_path, f'[mqtt]\npassword_file = "{missing}"\n')
    err = load_error(path)
    assert str(err) == (
        f"{path}: mqtt.password_file: cannot read '{missing}': No such file or directory"
    )
    assert err.errors == [
        ("mqtt.password_file", f"cannot read '{missing}': No such file or directory")
    ]


def test_password_file_empty(tmp_path: Path) -> None:
    secret = tmp_path / "empty"
    secret.write_text("\n", encoding="utf-8")
    path = write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n')
    assert load_error(path).errors == [("mqtt.password_file", f"'{secret}' is empty")]


def test_password_and_password_file_conflict(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file", encoding="utf-8")
    path = write(tmp_path, f'[mqtt]\npassword_file = "{secret}"\n')
    err = load_error(path, {"CONDUYT_BRIDGE_MQTT__PASSWORD": "hunter2"})
    assert err.errors == [("mqtt.password_file", "set either password or password_file, not both")]
    assert "hunter2" not in str(err)
    assert "from-file" not in str(err)


def test_empty_env_path_means_unset(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={"CONDUYT_BRIDGE_MQTT__TLS_CA": ""})
    assert settings.mqtt.tls_ca is None
    assert settings.mqtt.tls is False


def test_redacted_dump_hides_password(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    settings = load_settings(path, env={"CONDUYT_BRIDGE_MQTT__PASSWORD": "hunter2"})

    dumped = redacted_dump(settings)

    assert dumped["mqtt"]["password"] == "***"
    assert "hunter2" not in json.dumps(dumped)
    assert dumped["mqtt"]["username"] == "bridge"
    assert dumped["devices"][0]["port"] == "/dev/serial/by-id/usb-Arduino_Uno_1234-if00"
    assert dumped["devices"][0]["pins"][0] == {
        "pin": 14,
        "mode": "analog_poll",
        "interval_ms": 500,
        "threshold": 4,
    }


def test_redacted_dump_without_password(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    assert redacted_dump(settings)["mqtt"]["password"] == ""


def test_no_password_in_any_error(tmp_path: Path) -> None:
    # Several errors at once, with a password set: none of the messages may leak it,
    # including the credentials-in-URL case.
    path = write(
        tmp_path,
        '[mqtt]\npassword = "hunter2"\nurl = "mqtt://u:hunter2@host"\n'
        '[[devices]]\nport = "a"\n[[devices]]\nport = "a"\n',
    )
    err = load_error(path)
    assert "hunter2" not in str(err)
    assert err.errors == [
        (
            "mqtt.url",
            "credentials in the URL are not supported: "
            "use mqtt.username and mqtt.password (or password_file)",
        )
    ]
    assert err.__cause__ is None
    assert err.__suppress_context__ is True


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    err = load_error(path)
    assert str(err) == f"{path}: file not found"
    assert err.errors == [("", "file not found")]
    assert err.path == str(path)


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nurl "mqtt://x"\n')
    err = load_error(path)
    assert str(err) == (
        f"{path}: invalid TOML: Expected '=' after a key in a key/value pair (at line 2, column 5)"
    )


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert str(load_error(tmp_path)) == f"{tmp_path}: is a directory, not a file"


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 0 does not stop root (CI runs as root), so fail the read itself.
    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    path = write(tmp_path, "")
    monkeypatch.setattr(Path, "read_bytes", deny)
    assert str(load_error(path)) == f"{path}: cannot read file: Permission denied"


def test_relative_path_is_named_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, '[mqtt]\nurl = "http://x"\n')
    err = load_error(Path("config.toml"))
    assert str(err) == "config.toml: mqtt.url: scheme must be mqtt:// or mqtts:// (got 'http://x')"


# --------------------------------------------------------------------------- value errors


def test_unknown_key_typo(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\npasword = "hunter2"\n')
    err = load_error(path)
    assert str(err) == f"{path}: mqtt.pasword: unknown key (did you mean 'password'?)"
    assert "hunter2" not in str(err)


def test_unknown_section_and_nested_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[mqqt]\nx = 1\n"
        '[[devices]]\nport = "sim://thermostat"\nbaud = 9600\n'
        "[devices.datastreams.temperature]\nexpire_after = 5\n",
    )
    assert load_error(path).errors == [
        (
            "devices[0].datastreams.temperature.expire_after",
            "unknown key (did you mean 'expire_after_s'?)",
        ),
        ("devices[0].baud", "unknown key (did you mean 'baudrate'?)"),
        ("mqqt", "unknown key (did you mean 'mqtt'?)"),
    ]


def test_bad_url_scheme(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nurl = "http://x"\n')
    err = load_error(path)
    assert str(err) == f"{path}: mqtt.url: scheme must be mqtt:// or mqtts:// (got 'http://x')"
    assert err.errors == [("mqtt.url", "scheme must be mqtt:// or mqtts:// (got 'http://x')")]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mqtt://", "host is missing (got 'mqtt://')"),
        ("mqtt://h:0", "port must be a number 1..65535 (got 'mqtt://h:0')"),
        ("mqtt://h:99999", "port must be a number 1..65535 (got 'mqtt://h:99999')"),
        ("mqtt://h:abc", "port must be a number 1..65535 (got 'mqtt://h:abc')"),
        ("localhost:1883", "scheme must be mqtt:// or mqtts:// (got 'localhost:1883')"),
        (
            "mqtt://h/topic",
            "must be scheme://host[:port] with nothing after it (got 'mqtt://h/topic')",
        ),
    ],
)
def test_bad_urls(tmp_path: Path, url: str, reason: str) -> None:
    path = write(tmp_path, f"[mqtt]\nurl = {json.dumps(url)}\n")
    assert load_error(path).errors == [("mqtt.url", reason)]


def test_bad_pin_mode(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "sim://uno"\n'
        '[[devices]]\nport = "sim://kitchen"\n'
        '[[devices.pins]]\npin = 3\nmode = "toggle"\n',
    )
    err = load_error(path)
    assert str(err) == (
        f"{path}: devices[1].pins[0].mode: "
        "Input should be 'change', 'rising', 'falling' or 'analog_poll'"
    )


def test_pin_ranges(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "sim://uno"\n'
        '[[devices.pins]]\npin = 256\nmode = "change"\ninterval_ms = 0\n',
    )
    assert load_error(path).errors == [
        ("devices[0].pins[0].pin", "Input should be less than or equal to 255"),
        ("devices[0].pins[0].interval_ms", "Input should be greater than or equal to 1"),
    ]


def test_missing_required_port(tmp_path: Path) -> None:
    path = write(tmp_path, '[[devices]]\nid = "a"\n')
    assert str(load_error(path)) == f"{path}: devices[0].port: required key is missing"


def test_section_must_be_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'mqtt = "mqtt://x"\n')
    assert load_error(path).errors == [("mqtt", "must be a table")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "base topic must not be empty"),
        ("a/#", "must not contain the MQTT wildcards '+' or '#' (got 'a/#')"),
        ("a/+/b", "must not contain the MQTT wildcards '+' or '#' (got 'a/+/b')"),
        ("/conduyt", "must not start or end with '/' (got '/conduyt')"),
        ("conduyt/", "must not start or end with '/' (got 'conduyt/')"),
    ],
)
def test_bad_base_topic(tmp_path: Path, value: str, reason: str) -> None:
    path = write(tmp_path, f"[bridge]\nbase_topic = {json.dumps(value)}\n")
    assert load_error(path).errors == [("bridge.base_topic", reason)]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9100", "must be 'host:port', e.g. '0.0.0.0:9100' (got '9100')"),
        ("h:0", "port must be a number 1..65535 (got 'h:0')"),
        ("h:x", "port must be a number 1..65535 (got 'h:x')"),
        ("::1:80", "an IPv6 address must be in brackets, e.g. '[::]:9100' (got '::1:80')"),
    ],
)
def test_bad_http_listen(tmp_path: Path, value: str, reason: str) -> None:
    path = write(tmp_path, f"[http]\nlisten = {json.dumps(value)}\n")
    assert load_error(path).errors == [("http.listen", reason)]


@pytest.mark.parametrize(
    ("device", "key", "reason"),
    [
        ('id = "-x"\nport = "a"', "id", "must be 1-64 letters, digits, '_' or '-', "
         "starting with a letter or digit (got '-x')"),
        ('port = "b"\nmcu_id = "xyz"', "mcu_id", "must be a hex string of 1-16 digits, "
         "e.g. 'a1b2c3d4' (got 'xyz')"),
        ('port = "sim://"', "port", "sim:// needs a profile name, e.g. 'sim://thermostat' "
         "(got 'sim://')"),
        ('port = "socket://h"', "port", "socket:// needs a port number 1..65535, "
         "e.g. 'socket://192.0.2.7:4000' (got 'socket://h')"),
        ('port = "rfc2217://h:70000"', "port", "rfc2217:// needs a port number 1..65535, "
         "e.g. 'rfc2217://192.0.2.7:4000' (got 'rfc2217://h:70000')"),
        ('port = "listen://0.0.0.0"', "port", "listen:// needs a port number 1..65535, "
         "e.g. 'listen://0.0.0.0:5000' (got 'listen://0.0.0.0')"),
        ('port = ""', "port", "must not be empty"),
        ('port = "/"', "port", "cannot derive a device id from port '/': set id"),
        ('port = "a"\nkeepalive_misses = 0', "keepalive_misses",
         "Input should be greater than or equal to 1"),
        ('port = "a"\nread_coalesce_ms = -1', "read_coalesce_ms",
         "Input should be greater than or equal to 0"),
        ('port = "a"\nread_coalesce_ms = 300', "read_coalesce_ms",
         "Input should be less than or equal to 250"),
        ('port = "a"\nreconnect_min_s = 5.0\nreconnect_max_s = 1.0', "reconnect_max_s",
         "must be >= reconnect_min_s (5)"),
    ],
)  # fmt: skip
def test_bad_device_values(tmp_path: Path, device: str, key: str, reason: str) -> None:
    path = write(tmp_path, f"[[devices]]\n{device}\n")
    assert load_error(path).errors == [(f"devices[0].{key}", reason)]


def test_duplicate_pin_subscription(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "a"\n'
        '[[devices.pins]]\npin = 3\nmode = "change"\n'
        '[[devices.pins]]\npin = 3\nmode = "rising"\n',
    )
    assert load_error(path).errors == [
        ("devices[0].pins[1].pin", "pin 3 is already subscribed by pins[0]")
    ]


def test_several_errors_one_line_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[mqtt]\nurl = "http://x"\npasword = "p"\n'
        '[[devices]]\nport = "a"\n[[devices.pins]]\npin = 1\nmode = "x"\n',
    )
    err = load_error(path)
    lines = str(err).splitlines()
    assert len(lines) == len(err.errors) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)


# --------------------------------------------------------------------------- cross-device


def test_duplicate_device_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nid = "greenhouse"\nport = "/dev/ttyUSB0"\n'
        '[[devices]]\nid = "greenhouse"\nport = "/dev/ttyUSB1"\n',
    )
    err = load_error(path)
    assert str(err) == (
        f"{path}: devices[1].id: duplicate device id 'greenhouse': also used by devices[0]"
    )


def test_duplicate_derived_device_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "/dev/ttyUSB0"\n[[devices]]\nport = "/dev/serial/ttyUSB0"\n',
    )
    assert load_error(path).errors == [
        (
            "devices[1].port",
            "device id 'ttyUSB0' derived from port '/dev/serial/ttyUSB0' is also used by "
            "devices[0]: set a unique id",
        )
    ]


def test_duplicate_port(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nid = "a"\nport = "socket://10.0.0.5:4000"\n'
        '[[devices]]\nid = "b"\nport = "rfc2217://10.0.0.5:4000"\n'
        '[[devices]]\nid = "c"\nport = "/dev/ttyUSB0"\n'
        '[[devices]]\nid = "d"\nport = "/dev/ttyUSB0"\n',
    )
    assert load_error(path).errors == [
        ("devices[1].port", "port 'rfc2217://10.0.0.5:4000' is already used by devices[0]"),
        ("devices[3].port", "port '/dev/ttyUSB0' is already used by devices[2]"),
    ]


def test_shared_listen_port_needs_mcu_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "listen://0.0.0.0:5000"\nmcu_id = "ABCD"\n'
        '[[devices]]\nid = "porch"\nport = "listen://0.0.0.0:5000"\n',
    )
    err = load_error(path)
    assert str(err) == (
        f"{path}: devices[1].mcu_id: port 'listen://0.0.0.0:5000' is shared with devices[0]: "
        "every device on a shared listen port needs an mcu_id"
    )


def test_shared_listen_port_duplicate_mcu_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nid = "a"\nport = "listen://0.0.0.0:5000"\nmcu_id = "abcd"\n'
        '[[devices]]\nid = "b"\nport = "listen://0.0.0.0:5000"\nmcu_id = "ABCD"\n',
    )
    assert load_error(path).errors == [
        ("devices[1].mcu_id", "mcu_id 'abcd' is also used by devices[0] on the same listen port")
    ]


def test_shared_listen_port_ambiguous_mcu_id_prefix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nid = "a"\nport = "listen://0.0.0.0:5000"\nmcu_id = "A1B2"\n'
        '[[devices]]\nid = "b"\nport = "listen://0.0.0.0:5000"\nmcu_id = "a1b2c3d4e5f60000"\n'
        '[[devices]]\nid = "c"\nport = "listen://0.0.0.0:5001"\nmcu_id = "a1b2c3"\n',
    )
    # Only devices on the same port clash; "c" listens elsewhere.
    assert load_error(path).errors == [
        (
            "devices[1].mcu_id",
            "mcu_id 'a1b2c3d4e5f60000' and 'a1b2' of devices[0] on the same listen port are "
            "ambiguous: one is a prefix of the other",
        )
    ]


def test_shared_listen_port_with_mcu_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "listen://0.0.0.0:5000"\nmcu_id = "ABCD"\n'
        '[[devices]]\nport = "listen://0.0.0.0:5000"\nmcu_id = "00ff"\n'
        '[[devices]]\nport = "listen://0.0.0.0:5001"\n',
    )
    settings = load_settings(path, env={})
    assert [d.device_id for d in settings.devices] == ["mcu-abcd", "mcu-00ff", "listen-5001"]
    assert settings.devices[0].mcu_id == "abcd"
    assert settings.devices[0].net_address == ("0.0.0.0", 5000)


# --------------------------------------------------------------------------- device ids


@pytest.mark.parametrize(
    ("port", "mcu_id", "device_id", "kind"),
    [
        ("sim://thermostat", None, "thermostat", "sim"),
        ("/dev/ttyUSB0", None, "ttyUSB0", "serial"),
        ("/dev/ttyUSB0", "abcd", "ttyUSB0", "serial"),
        (
            "/dev/serial/by-id/usb-Arduino_Uno_1234-if00",
            None,
            "usb-Arduino_Uno_1234-if00",
            "serial",
        ),
        ("socket://10.0.0.5:4000", None, "10-0-0-5-4000", "socket"),
        ("socket://10.0.0.5:4000", "abcd", "10-0-0-5-4000", "socket"),
        ("rfc2217://h:7000", None, "h-7000", "rfc2217"),
        ("rfc2217://serial.local:7000?logging=debug", None, "serial-local-7000", "rfc2217"),
        ("listen://0.0.0.0:5000", "abcd", "mcu-abcd", "listen"),
        ("listen://0.0.0.0:5000", "ABCD", "mcu-abcd", "listen"),
        ("listen://0.0.0.0:5000", None, "listen-5000", "listen"),
        ("COM3", None, "COM3", "serial"),
        ("/dev/tty.usbmodem 14101", None, "tty-usbmodem-14101", "serial"),
        ("/dev/ttyACM0/", None, "ttyACM0", "serial"),
    ],
)
def test_device_id_derivation(port: str, mcu_id: str | None, device_id: str, kind: str) -> None:
    device = DeviceConfig(port=port, mcu_id=mcu_id)
    assert device.device_id == device_id
    assert device.port_kind == kind


def test_explicit_id_wins() -> None:
    device = DeviceConfig(id="greenhouse", port="listen://0.0.0.0:5000", mcu_id="abcd")
    assert device.device_id == "greenhouse"


def test_net_address_and_profile() -> None:
    assert DeviceConfig(port="socket://[::1]:4000").net_address == ("::1", 4000)
    assert DeviceConfig(port="listen://:5000").net_address == ("", 5000)
    assert DeviceConfig(port="/dev/ttyUSB0").net_address is None
    assert DeviceConfig(port="/dev/ttyUSB0").sim_profile is None
    assert DeviceConfig(port="sim://kitchen").sim_profile == "kitchen"


def test_device_defaults() -> None:
    device = DeviceConfig(port="/dev/ttyUSB0")
    assert device.baudrate == 115200
    assert (device.read_only, device.allow_raw, device.allow_ota) == (False, True, False)
    assert device.raw_mirror is False  # each event once, on its typed topic
    assert device.pins == []
    assert device.datastreams == {}
    assert (device.command_timeout_ms, device.hello_timeout_ms) == (1000, 1000)
    assert (device.keepalive_s, device.keepalive_misses) == (5.0, 3)
    assert device.read_coalesce_ms == 1.0
    assert (device.reconnect_min_s, device.reconnect_max_s) == (0.5, 30.0)
    assert device.string_encoding == "u16_prefix"


def test_device_id_bridge_is_reserved(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[devices]]\nid = "bridge"\nport = "sim://uno"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    assert str(info.value) == (
        f"{config}: devices[0].id: device id 'bridge' is reserved for {{base}}/bridge/ "
        "topics: choose another id"
    )


def test_any_number_of_devices_may_share_a_sim_profile() -> None:
    settings = Settings(devices=[{"id": f"t{n}", "port": "sim://thermostat"} for n in range(5)])
    assert [d.sim_profile for d in settings.devices] == ["thermostat"] * 5


def test_shared_sim_profile_without_ids_asks_for_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[devices]]\nport = "sim://thermostat"\n[[devices]]\nport = "sim://thermostat"\n',
    )
    assert load_error(path).errors == [
        (
            "devices[1].port",
            "device id 'thermostat' derived from port 'sim://thermostat' is also used by "
            "devices[0]: set a unique id",
        )
    ]


@pytest.mark.parametrize(
    ("port", "reason"),
    [
        (
            "sim://thermostatt",
            "unknown simulator profile 'thermostatt' (did you mean 'thermostat'?); "
            "profiles: firehose, garage, kitchen, thermostat, uno, workshop",
        ),
        (
            "sim://nothing-like-it",
            "unknown simulator profile 'nothing-like-it'; "
            "profiles: firehose, garage, kitchen, thermostat, uno, workshop",
        ),
        (
            "serial://dev/ttyUSB0",
            "unknown port scheme 'serial://': use one of 'listen://', 'rfc2217://', "
            "'sim://', 'socket://', 'tcp://' or a serial device path (e.g. '/dev/ttyUSB0')",
        ),
        (
            "SOCKETT://192.0.2.7:4000",
            "unknown port scheme 'sockett://': use one of 'listen://', 'rfc2217://', "
            "'sim://', 'socket://', 'tcp://' or a serial device path (e.g. '/dev/ttyUSB0'); "
            "did you mean 'socket://'?",
        ),
    ],
)
def test_unknown_sim_profiles_and_port_schemes(tmp_path: Path, port: str, reason: str) -> None:
    path = write(tmp_path, f'[[devices]]\nid = "a"\nport = "{port}"\n')
    assert load_error(path).errors == [("devices[0].port", reason)]


def test_tls_files_must_be_readable(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    path = write(
        tmp_path,
        f'[mqtt]\ntls_ca = "{ca}"\ntls_cert = "{tmp_path}/nope.crt"\ntls_key = "{tmp_path}"\n',
    )
    assert load_error(path).errors == [
        (
            "mqtt.tls_cert",
            f"cannot read '{tmp_path}/nope.crt': No such file or directory; check the path",
        ),
        ("mqtt.tls_key", f"cannot read '{tmp_path}': Is a directory; it must be a PEM file"),
    ]
