"""Sparkplug B payloads, topics, aliases and commands, decoded by an independent reader
(`support.sparkplug_decoder`: `tahutils`' schema in a pool of its own)."""

from __future__ import annotations

import pytest
from esio_spb_builder.core import sparkplug_b_pb2
from pydantic import ValidationError
from support import sparkplug_decoder as spd

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.plugins import sparkplug_options
from conduyt_bridge.northbound.sparkplug import codec, commands, metrics
from conduyt_bridge.northbound.sparkplug.codec import DataType, Metric
from conduyt_bridge.northbound.sparkplug.metrics import REBIRTH, AliasTable
from conduyt_bridge.northbound.sparkplug.topics import SparkplugTopics, parse_state, state_topic
from conduyt_bridge.protocol.constants import DatastreamType
from conduyt_bridge.protocol.hello import DatastreamDescriptor


def test_the_decoder_is_not_the_encoders_classes() -> None:
    assert spd.Payload is not sparkplug_b_pb2.Payload


def test_datatype_codes_match_the_independent_schema() -> None:
    names = {
        DataType.INT8: "Int8", DataType.INT16: "Int16", DataType.INT32: "Int32",
        DataType.INT64: "Int64", DataType.UINT8: "UInt8", DataType.UINT16: "UInt16",
        DataType.UINT32: "UInt32", DataType.UINT64: "UInt64", DataType.FLOAT: "Float",
        DataType.DOUBLE: "Double", DataType.BOOLEAN: "Boolean", DataType.STRING: "String",
        DataType.BYTES: "Bytes",
    }  # fmt: skip
    for ours, theirs in names.items():
        assert int(ours) == spd.DATATYPE[theirs]


@pytest.mark.parametrize(
    ("ds_type", "expected", "value", "field", "wire"),
    [
        (DatastreamType.BOOL, DataType.BOOLEAN, True, "boolean_value", True),
        (DatastreamType.INT8, DataType.INT8, -1, "int_value", 0xFFFFFFFF),
        (DatastreamType.UINT8, DataType.UINT8, 200, "int_value", 200),
        (DatastreamType.INT16, DataType.INT16, -300, "int_value", 2**32 - 300),
        (DatastreamType.UINT16, DataType.UINT16, 60000, "int_value", 60000),
        (DatastreamType.INT32, DataType.INT32, -(2**31), "int_value", 2**31),
        (DatastreamType.FLOAT32, DataType.FLOAT, 21.5, "float_value", 21.5),
        (DatastreamType.STRING, DataType.STRING, "héllo", "string_value", "héllo"),
        (DatastreamType.BYTES, DataType.BYTES, b"\x00\xff", "bytes_value", b"\x00\xff"),
    ],
)
def test_each_conduyt_type_encodes_as_its_sparkplug_type(
    ds_type: DatastreamType, expected: DataType, value: object, field: str, wire: object
) -> None:
    ds = DatastreamDescriptor(0, "x", ds_type, unit="u", writable=True)
    datatype = codec.datatype_of(ds)
    assert datatype is expected
    data = codec.encode_payload(
        [Metric("x", 7, datatype, value, ts_ms=5, properties={"engUnit": (DataType.STRING, "u")})],
        ts_ms=1000,
        seq=3,
    )
    decoded = spd.decode(data)
    assert (decoded.timestamp, decoded.seq) == (1000, 3)
    (m,) = decoded.metrics
    assert (m.name, m.alias, m.datatype, m.timestamp) == ("x", 7, int(expected), 5)
    assert m.WhichOneof("value") == field and getattr(m, field) == wire
    assert spd.properties(m) == {"engUnit": "u"}


def test_null_values_seq_omitted_and_data_metrics_without_name_or_datatype() -> None:
    data = codec.encode_payload(
        [
            Metric(None, 4, None, 1.5, value_type=DataType.FLOAT),
            Metric("n", 5, DataType.INT32, None),
        ],
        ts_ms=1,
        seq=None,
    )
    decoded = spd.decode(data)
    assert not decoded.HasField("seq")
    first, second = decoded.metrics
    assert not first.HasField("name") and not first.HasField("datatype")
    assert first.alias == 4 and first.float_value == 1.5
    assert second.is_null and spd.metric_value(second) is None


def test_commands_decode_signed_values_and_names() -> None:
    data = spd.encode_command(
        [
            {"name": "a", "datatype": 1, "int_value": 0xFFFFFFFE},
            {"alias": 9, "datatype": 9, "float_value": 23.5},
            {"name": "c", "is_null": True},
            {"name": "d", "datatype": 4, "long_value": 2**64 - 5},
        ]
    )
    found, extra = codec.decode_command(data)
    assert extra == 0
    assert [(m.name, m.alias, m.value) for m in found] == [
        ("a", None, -2),
        ("", 9, 23.5),
        ("c", None, None),
        ("d", None, -5),
    ]


@pytest.mark.parametrize(
    "data",
    [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12" + b"\xff" * 12, b"\x00" * 70000],
)
def test_garbage_and_huge_commands_raise_the_payload_error(data: bytes) -> None:
    with pytest.raises(codec.SparkplugPayloadError):
        codec.decode_command(data)


def test_too_many_metrics_are_counted_not_taken() -> None:
    data = spd.encode_command([{"name": f"m{i}", "boolean_value": True} for i in range(70)])
    found, extra = codec.decode_command(data)
    assert (len(found), extra) == (codec.MAX_COMMAND_METRICS, 70 - codec.MAX_COMMAND_METRICS)


def test_aliases_are_unique_and_stable() -> None:
    table = AliasTable()
    a = table.alias("", "bdSeq")
    b = table.alias("th", "setpoint_celsius")
    c = table.alias("k", "setpoint_celsius")
    assert len({a, b, c}) == 3
    assert table.alias("th", "setpoint_celsius") == b
    assert table.lookup(b) == ("th", "setpoint_celsius") and table.lookup(99) is None


def test_dcmd_writes_and_rebirth_requests() -> None:
    table = AliasTable()
    alias = table.alias("th", "setpoint_celsius")
    other = table.alias("k", "light")
    metrics = [
        codec.CommandMetric("", alias, 9, 22.0),
        codec.CommandMetric("heater", None, 11, True),
        codec.CommandMetric("", other, 5, 3),  # another device's alias
        codec.CommandMetric("x", None, None, None),  # no value
    ]
    writes, unusable = commands.dcmd_writes("th", metrics, table, {})
    assert writes == [commands.Write("setpoint_celsius", 22.0), commands.Write("heater", True)]
    assert unusable == 2
    # By name only (tck-id-operational-behavior-data-commands-rebirth-name-aliases).
    assert commands.asks_rebirth([codec.CommandMetric(REBIRTH, None, 11, True)])
    assert commands.asks_rebirth([codec.CommandMetric(REBIRTH, None, None, True)])
    assert not commands.asks_rebirth([codec.CommandMetric(REBIRTH, None, 11, False)])
    assert not commands.asks_rebirth([codec.CommandMetric("", 1, 11, True)])


def test_alias_only_dcmd_takes_the_datastreams_datatype_for_the_sign() -> None:
    table = AliasTable()
    small = table.alias("th", "offset")
    wide = table.alias("th", "big")
    data = spd.encode_command(
        [
            {"alias": small, "int_value": (-3) & 0xFFFFFFFF},  # no datatype (3.0 §6.4.4)
            {"alias": wide, "long_value": (-7) & 0xFFFFFFFFFFFFFFFF},
            {"name": "count", "int_value": 0xFFFFFFFF},  # unsigned datastream: as is
        ]
    )
    found, _ = codec.decode_command(data)
    types = {"offset": DataType.INT8, "big": DataType.INT64, "count": DataType.UINT32}
    writes, unusable = commands.dcmd_writes("th", found, table, types)
    assert unusable == 0
    assert writes == [
        commands.Write("offset", -3),
        commands.Write("big", -7),
        commands.Write("count", 0xFFFFFFFF),
    ]


def test_node_birth_and_data_metrics_are_timestamped_and_rebirth_has_no_alias() -> None:
    table = AliasTable()
    values = {"Bridge/version": (DataType.STRING, "1")}
    birth = spd.decode(
        codec.encode_payload(metrics.node_birth_metrics(table, 3, values, 1234), ts_ms=1, seq=0)
    )
    assert [m.timestamp for m in birth.metrics] == [1234, 1234, 1234]
    assert not spd.by_name(birth)[REBIRTH].HasField("alias")
    data = spd.decode(
        codec.encode_payload(metrics.node_data_metrics(table, values.items(), 99), ts_ms=1, seq=1)
    )
    assert [m.timestamp for m in data.metrics] == [99]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (b'{"online": true, "timestamp": 1.7e12}', (True, 1_700_000_000_000)),
        (b'{"online": false, "timestamp": 5}', (False, 5)),
        (b'{"online": true}', (True, 0)),
    ],
)
def test_state_payloads(doc: bytes, expected: tuple[bool, int]) -> None:
    assert parse_state(doc) == expected


@pytest.mark.parametrize(
    "doc",
    [b'{"online": true, "timestamp": 1.5}', b'{"online": true, "timestamp": true}', b"[1]",
     b'{"online": 1}', b"x", b" " * 2000],
)  # fmt: skip
def test_unusable_state_payloads(doc: bytes) -> None:
    with pytest.raises(ValueError):
        parse_state(doc)


def test_topics() -> None:
    t = SparkplugTopics("g", "e")
    assert t.node("NBIRTH") == "spBv1.0/g/NBIRTH/e"
    assert t.device("DDATA", "th") == "spBv1.0/g/DDATA/e/th"
    assert t.dcmd_filter == "spBv1.0/g/DCMD/e/+"
    assert t.dcmd_device("spBv1.0/g/DCMD/e/th") == "th"
    assert t.dcmd_device("spBv1.0/g/DCMD/e/th/x") is None
    assert t.dcmd_device("spBv1.0/g/DCMD/other/th") is None
    assert state_topic("scada") == "spBv1.0/STATE/scada"


def test_config_section() -> None:
    s = Settings(sparkplug={"enabled": True, "group_id": "plant", "edge_node_id": "line1"})
    assert (s.sparkplug.enabled, s.sparkplug.primary_host_id) == (True, "")
    assert Settings().sparkplug.enabled is False
    # The default edge node id is the bridge's fleet id; an explicit one is kept.
    fleet = Settings(bridge={"id": "pi4"}, sparkplug={"enabled": True})
    assert sparkplug_options(fleet).edge_node_id == "pi4"
    assert sparkplug_options(s).edge_node_id == "line1"
    for bad in ({"group_id": "a/b"}, {"edge_node_id": ""}, {"primary_host_id": "h#"}, {"x": 1}):
        with pytest.raises(ValidationError):
            Settings(sparkplug=bad)
