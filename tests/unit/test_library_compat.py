"""Source compatibility with conduyt-py 1.0: every public method of its device, sync
device, pin proxies, module classes and OTA helper exists on ours with parameters a call
written for conduyt-py still fits (same names and kinds, a default wherever it has one,
nothing extra without a default), async where it is async; the HELLO_RESP fields it
documents exist under the same names."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import conduyt
import conduyt.device
import conduyt.hello
import conduyt.modules
import conduyt.ota
import conduyt.sync
import conduyt.transports.serial
import pytest

import conduyt_bridge
import conduyt_bridge.modules
from conduyt_bridge.device.conduyt_sync import SyncPin
from conduyt_bridge.device.pin import Pin
from conduyt_bridge.protocol import hello as our_hello

MODULES = [
    "ConduytServo",
    "ConduytNeoPixel",
    "ConduytDHT",
    "ConduytEncoder",
    "ConduytStepper",
    "ConduytOLED",
    "ConduytPID",
]

PAIRS: list[tuple[type, type]] = [
    (conduyt.ConduytDevice, conduyt_bridge.ConduytDevice),
    (conduyt.ConduytDeviceSync, conduyt_bridge.ConduytDeviceSync),
    (conduyt.device._PinProxy, Pin),
    (conduyt.sync._SyncPinProxy, SyncPin),
    (conduyt.ota.ConduytOTA, conduyt_bridge.ConduytOTA),
    *[(getattr(conduyt.modules, n), getattr(conduyt_bridge.modules, n)) for n in MODULES],
]


PROXIES = {conduyt.device._PinProxy, conduyt.sync._SyncPinProxy}
"""Made by `device.pin()`, never by the caller: their constructors are not compared."""


def public(cls: type) -> dict[str, Any]:
    constructor = "__init__" if cls not in PROXIES else None
    return {n: v for n, v in vars(cls).items() if not n.startswith("_") or n == constructor}


def compatible(theirs: inspect.Signature, ours: inspect.Signature) -> list[str]:
    """Why a call that fits `theirs` may not fit `ours` (empty: it always fits)."""
    problems = []
    mine = ours.parameters
    for name, param in theirs.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        other = mine.get(name)
        if other is None:
            problems.append(f"missing parameter {name}")
            continue
        if other.kind is not param.kind and other.kind is not param.POSITIONAL_OR_KEYWORD:
            problems.append(f"{name}: {param.kind.name} became {other.kind.name}")
        if param.default is not param.empty and other.default is other.empty:
            problems.append(f"{name}: lost its default")
    theirs_positional = [
        n
        for n, p in theirs.parameters.items()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    ours_positional = [
        n for n, p in mine.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if ours_positional[: len(theirs_positional)] != theirs_positional:
        problems.append(f"positional order {theirs_positional} became {ours_positional}")
    for name, param in mine.items():
        variadic = param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        if name not in theirs.parameters and param.default is param.empty and not variadic:
            problems.append(f"new parameter {name} has no default")
    return problems


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_method_exists_with_compatible_parameters(theirs: type, ours: type) -> None:
    problems = []
    for name, member in public(theirs).items():
        if isinstance(member, property):
            if not isinstance(inspect.getattr_static(ours, name, None), property):
                problems.append(f"{name}: not a property")
            continue
        if not callable(member):
            continue
        mine = inspect.getattr_static(ours, name, None)
        if mine is None or not callable(mine):
            problems.append(f"{name}: missing")
            continue
        if name != "__init__" and inspect.iscoroutinefunction(member) != (
            inspect.iscoroutinefunction(mine)
        ):
            problems.append(f"{name}: async-ness differs")
        problems += [
            f"{name}: {p}"
            for p in compatible(inspect.signature(member), inspect.signature(getattr(ours, name)))
        ]
    assert problems == []


def test_the_checker_sees_an_incompatibility() -> None:
    def theirs(self: object, pin: int, min_us: int = 544) -> None: ...

    def dropped_default(self: object, pin: int, min_us: int) -> None: ...

    def renamed(self: object, p: int, min_us: int = 544) -> None: ...

    def new_required(self: object, pin: int, min_us: int = 544, *, x: int) -> None: ...

    sig = inspect.signature
    assert compatible(sig(theirs), sig(theirs)) == []
    assert compatible(sig(theirs), sig(dropped_default)) == ["min_us: lost its default"]
    assert "missing parameter pin" in compatible(sig(theirs), sig(renamed))
    assert compatible(sig(theirs), sig(new_required)) == ["new parameter x has no default"]


def test_top_level_and_module_names_exist() -> None:
    for name in conduyt.__all__:
        assert hasattr(conduyt_bridge, name), name
    for name in conduyt.modules.__all__:
        assert hasattr(conduyt_bridge.modules, name), name


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (conduyt.hello.HelloResp, our_hello.HelloResp),
        (conduyt.hello.PinCapability, our_hello.PinCapability),
        (conduyt.hello.ModuleDescriptor, our_hello.ModuleDescriptor),
        (conduyt.hello.DatastreamDescriptor, our_hello.DatastreamDescriptor),
        (conduyt.modules.DHTReading, conduyt_bridge.modules.DHTReading),
    ],
    ids=lambda c: c.__name__,
)
def test_hello_resp_fields_keep_their_names(theirs: type, ours: type) -> None:
    missing = [
        f.name
        for f in dataclasses.fields(theirs)
        if inspect.getattr_static(ours, f.name, None) is None
    ]
    assert missing == []


def test_parsed_hello_agrees_with_conduyt_py() -> None:
    from conduyt_bridge.simulator.profiles import get_profile

    payload = get_profile("kitchen").hello.encode()
    theirs = conduyt.hello.parse_hello_resp(payload)
    ours = our_hello.parse_hello(payload)
    assert theirs.firmware_name == ours.firmware_name
    assert theirs.firmware_version == ours.firmware_version
    assert theirs.mcu_id == ours.mcu_id
    assert [(p.pin, p.capabilities) for p in theirs.pins] == [
        (p.pin, int(p.capabilities)) for p in ours.pins
    ]
    assert [(m.module_id, m.name, m.version_major, m.version_minor) for m in theirs.modules] == [
        (m.module_id, m.name, m.version_major, m.version_minor) for m in ours.modules
    ]
    assert [(d.name, d.type, d.unit, d.writable) for d in theirs.datastreams] == [
        (d.name, int(d.type), d.unit, d.writable) for d in ours.datastreams
    ]


def test_conduyt_py_import_paths_exist() -> None:
    """Each conduyt-py module path a program imports has its conduyt-bridge twin, so the
    package name is all that changes (review finding 7)."""
    import importlib
    from pathlib import Path

    for package in ("modules", "transports"):
        root = Path(conduyt.__file__).parent / package
        for path in sorted(root.glob("*.py")):
            if path.stem in ("__init__", "mock", "mqtt"):
                continue  # mock and mqtt have no counterpart: their imports say so
            theirs = importlib.import_module(f"conduyt.{package}.{path.stem}")
            ours = importlib.import_module(f"conduyt_bridge.{package}.{path.stem}")
            public = [
                n
                for n in vars(theirs)
                if n.startswith("Conduyt") or n.endswith(("Transport", "Reading"))
            ]
            missing = [
                n
                for n in public
                if getattr(theirs, n).__module__ == theirs.__name__ and not hasattr(ours, n)
            ]
            assert missing == [], ours.__name__
    for name in ("mock", "mqtt"):
        with pytest.raises(ImportError, match="conduyt-bridge has no"):
            importlib.import_module(f"conduyt_bridge.transports.{name}")


def test_serial_transport_takes_conduyt_py_arguments() -> None:
    from conduyt_bridge.transports.serial import SerialTransport

    theirs = inspect.signature(conduyt.transports.serial.SerialTransport)
    assert compatible(theirs, inspect.signature(SerialTransport)) == []
    transport = SerialTransport(port="/dev/ttyUSB0", baudrate=9600)
    assert transport.port == transport.url == transport.description == "/dev/ttyUSB0"


def test_a_conduyt_py_transport_is_a_clear_type_error() -> None:
    from conduyt.transports.mock import MockTransport

    with pytest.raises(
        TypeError,
        match=r"not conduyt\.transports\.mock\.MockTransport.*"
        r"SerialTransport\(port\)",
    ):
        conduyt_bridge.ConduytDevice(MockTransport())
