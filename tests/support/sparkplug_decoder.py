"""An independent reader of Sparkplug B payloads for the tests (`docs/sparkplug.md` §8).

The bridge encodes with the bindings shipped by `esio-spb-builder`; the tests decode with
the schema shipped by another package, `tahutils` (the Eclipse Tahu `sparkplug_b.proto`),
loaded into a descriptor pool of its own, so the message classes are not the bridge's.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tahutils.tahu import sparkplug_b_pb2 as _tahu

_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(_tahu.DESCRIPTOR.serialized_pb))
Payload: Any = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload")
)
"""The `Payload` message class of the independent decoder."""

DATATYPE = {
    v.name: v.number for v in _POOL.FindEnumTypeByName("org.eclipse.tahu.protobuf.DataType").values
}
"""Sparkplug datatype codes by name (`"Float"` → 9), from the independent schema."""


def decode(data: bytes) -> Any:
    """The `Payload` in `data` (raises google.protobuf.message.DecodeError)."""
    payload = Payload()
    payload.ParseFromString(data)
    return payload


def metric_value(metric: Any) -> Any:
    """The value of a decoded metric (None when `is_null`)."""
    if metric.is_null:
        return None
    field = metric.WhichOneof("value")
    return None if field is None else getattr(metric, field)


def by_name(payload: Any) -> dict[str, Any]:
    """The metrics of a BIRTH payload by name."""
    return {m.name: m for m in payload.metrics}


def properties(metric: Any) -> dict[str, Any]:
    """A metric's property set as {key: value}."""
    out: dict[str, Any] = {}
    for key, value in zip(metric.properties.keys, metric.properties.values, strict=True):
        out[key] = getattr(value, value.WhichOneof("value"))
    return out


def encode_command(metrics: list[dict[str, Any]], seq: int | None = None) -> bytes:
    """An NCMD/DCMD payload, built with the independent schema: each dict has `name` or
    `alias`, `datatype` (code), and one value field (`float_value=…`, `boolean_value=…`)."""
    payload = Payload()
    payload.timestamp = 1
    if seq is not None:
        payload.seq = seq
    for spec in metrics:
        m = payload.metrics.add()
        for key, value in spec.items():
            setattr(m, key, value)
    data: bytes = payload.SerializeToString()
    return data
