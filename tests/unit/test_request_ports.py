"""`[bridge] allowed_ports` as the request API applies it (`docs/requests.md` §5,
`conduyt_bridge.app.requests.ports`): what a hostile request cannot make the bridge open."""

from __future__ import annotations

import pytest

from conduyt_bridge.app.config_sections import BridgeSection
from conduyt_bridge.app.requests.errors import RequestError
from conduyt_bridge.app.requests.ports import check_port, port_allowed

DEFAULT = BridgeSection().allowed_ports
NETWORK = [*DEFAULT, "socket://10.0.0.*:5000", "tcp://board.lan:4000", "rfc2217://[fd00::*]"]


@pytest.mark.parametrize(
    "port",
    [
        "/dev/ttyUSB0",
        "/dev/ttyACM12",
        "/dev/serial/by-id/usb-Espressif_USB_JTAG_serial_debug_unit_24:0A:C4-if00",
        "sim://thermostat",
    ],
)
def test_the_default_globs_allow_serial_devices_and_simulators(port: str) -> None:
    assert port_allowed(port, DEFAULT)


@pytest.mark.parametrize(
    "port",
    [
        "/etc/passwd",
        "/dev/sda",
        "/dev/ttyUSB0/../sda",  # `*` spans `/`: the `..` segment is what is refused
        "/dev/ttyUSB0/..",
        "/dev/serial/by-id/../../sda",
        "/dev/serial/by-id/./x",
        "dev/ttyUSB0",  # relative: resolved against the bridge's working directory
        "ttyUSB0",
        "./dev/ttyUSB0",
        " /dev/ttyUSB0",
        "/dev/ttyUSB0 ",
        "/dev/ttyUSB0\n",
        "/dev/ttyUSB0\x00/etc/passwd",
        "SIM://thermostat",
        "tcp://10.0.0.5:5000",  # network ports only when listed
        "socket://127.0.0.1:22",
        "listen://0.0.0.0:5000",
        "rfc2217://10.0.0.5:2217",
    ],
)
def test_the_default_globs_refuse_everything_else(port: str) -> None:
    assert not port_allowed(port, DEFAULT)


def test_a_device_path_is_not_url_decoded_and_a_long_one_is_harmless() -> None:
    # Opened as written: a (missing) device of that very name, never /dev/sda.
    assert port_allowed("/dev/ttyUSB0%2f..%2fsda", DEFAULT)
    assert port_allowed("/dev/ttyUSB" + "0" * 70_000, DEFAULT)
    assert not port_allowed("/dev/ttyUSB0/.." * 10_000, DEFAULT)


@pytest.mark.parametrize(
    ("port", "allowed"),
    [
        ("socket://10.0.0.7:5000", True),
        ("SOCKET://10.0.0.7:5000", True),  # schemes are case-insensitive (RFC 3986)
        ("socket://10.0.0.7:5001", False),
        ("socket://10.0.0.7.evil.example:5000", False),  # a glob host matches IPs only
        ("socket://10.0.0.5:1@evil.example:5000", False),  # user info
        ("socket://evil.example:5000#@10.0.0.5:5000", False),
        ("socket://10.0.0.5:5000/x", False),
        ("socket://10.0.0.5:5000?x=1", False),
        ("socket://10.0.0.%35:5000", False),  # percent-encoding
        ("socket://10.0.0.7", False),  # no port number
        ("tcp://board.lan:4000", True),
        ("tcp://BOARD.lan:4000", True),  # host names are case-insensitive
        ("tcp://board.lan.evil.example:4000", False),
        ("tcp://10.0.0.7:4000", False),
        ("rfc2217://[fd00::12]:2217", True),
        ("rfc2217://[fe80::12]:2217", False),
        ("sim://../../etc/passwd", True),  # the glob allows it: the model refuses the profile
    ],
)
def test_network_ports_are_matched_by_their_parts(port: str, allowed: bool) -> None:
    assert port_allowed(port, NETWORK) is allowed


def test_the_refusal_names_the_globs() -> None:
    with pytest.raises(RequestError) as refused:
        check_port("/dev/ttyUSB0/../sda", DEFAULT)
    assert str(refused.value) == (
        "port '/dev/ttyUSB0/../sda' is not allowed: [bridge] allowed_ports permits "
        "'/dev/serial/by-id/*', '/dev/ttyUSB*', '/dev/ttyACM*', 'sim://*'"
    )
    with pytest.raises(RequestError) as refused:
        check_port("/dev/ttyUSB0", [])
    assert str(refused.value) == (
        "port '/dev/ttyUSB0' is not allowed: [bridge] allowed_ports permits none"
    )
