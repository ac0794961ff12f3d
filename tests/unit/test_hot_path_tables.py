"""The per-event shortcuts of the hot path (`docs/architecture.md` §6.1) give exactly
what the general code gives: the event bus's per-kind listener tables follow every
subscribe and unsubscribe, and `value_decoder` decodes like `decode_value`."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conduyt_bridge.core.events import BoardOffline, BoardOnline, EventBus, PacketReceived
from conduyt_bridge.errors import ConduytError
from conduyt_bridge.protocol import DatastreamDescriptor, DatastreamType
from conduyt_bridge.protocol.values import decode_value, value_decoder


def test_listener_tables_follow_subscribe_and_unsubscribe() -> None:
    bus = EventBus()
    seen: list[str] = []
    assert not bus.wants(PacketReceived)
    stop_all = bus.subscribe(lambda e: seen.append(f"all:{e.dev}"))
    assert bus.wants(PacketReceived)
    bus.emit(BoardOffline("a", "gone"))  # fills the table for BoardOffline
    stop_offline = bus.subscribe(lambda e: seen.append(f"off:{e.dev}"), kinds=(BoardOffline,))
    bus.subscribe(lambda e: seen.append(f"first:{e.dev}"), kinds=(BoardOffline,), first=True)
    bus.emit(BoardOffline("b", "gone"))
    assert seen == ["all:a", "first:b", "all:b", "off:b"]
    stop_all()
    stop_offline()
    seen.clear()
    bus.emit(BoardOffline("c", "gone"))
    assert seen == ["first:c"]
    assert not bus.wants(PacketReceived)  # no listener left without a kind filter
    assert not bus.wants(BoardOnline)
    assert bus.wants(BoardOffline)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # NaN, -0.0 and the digits
    return bool(a == b) and type(a) is type(b)


def _outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(raw)
    except (ConduytError, ValueError) as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("kind", list(DatastreamType))
@given(raw=st.binary(max_size=9))
def test_value_decoder_decodes_like_decode_value(kind: DatastreamType, raw: bytes) -> None:
    ds = DatastreamDescriptor(0, "x", kind)
    fast, general = _outcome(value_decoder(ds), raw), _outcome(lambda r: decode_value(ds, r), raw)
    assert fast[0] == general[0]
    assert _same(fast[1], general[1]), (raw.hex(), fast, general)


@given(value=st.floats(width=32))
def test_value_decoder_float32_every_bit_pattern_class(value: float) -> None:
    ds = DatastreamDescriptor(0, "x", DatastreamType.FLOAT32)
    raw = struct.pack("<f", value)
    assert _same(value_decoder(ds)(raw), decode_value(ds, raw))
