"""Sparkplug B (Eclipse Sparkplug 3.0) as a northbound adapter: the bridge is an edge node,
each board a device (`docs/sparkplug.md`).

`adapter` is the entry point (`sparkplug_adapter(options)`); `edge` holds the edge node's
session (births, deaths, data, `bdSeq`/`seq`, the primary host's `STATE`); `commands` turns
NCMD/DCMD into board jobs; `metrics` names the metrics and their aliases; `codec` builds
and reads the protobuf payloads; `topics` spells the `spBv1.0/…` topics.
"""
