"""Sparkplug B as a northbound adapter: `sparkplug_adapter(options)` installs an
`edge.EdgeNode` on the host when `[sparkplug] enabled` (`docs/sparkplug.md`)."""

from __future__ import annotations

from dataclasses import dataclass

from conduyt_bridge.northbound.host import Adapter, AdapterHost
from conduyt_bridge.northbound.mqtt.client import MqttSettings


@dataclass(frozen=True, slots=True)
class SparkplugOptions:
    """`[sparkplug]` as the adapter reads it: off unless `enabled`; `mqtt` is the broker
    settings of the edge node's own connection (the composition root passes `[mqtt]` with
    `session_expiry_s = 0`, a clean session, 3.0 §5.1)."""

    enabled: bool
    group_id: str
    edge_node_id: str
    primary_host_id: str
    base_topic: str
    mqtt: MqttSettings
    stats_interval_s: float = 30.0


def sparkplug_adapter(options: SparkplugOptions) -> Adapter:
    """The adapter: does nothing when disabled, else installs the edge node."""

    def install(host: AdapterHost) -> None:
        if not options.enabled:
            return
        # Imported only when enabled: the protobuf codec costs ~3 MiB of RSS (issue 10).
        from conduyt_bridge.northbound.sparkplug.edge import EdgeConfig, EdgeNode

        node = EdgeNode(
            host,
            EdgeConfig(
                group_id=options.group_id,
                edge_node_id=options.edge_node_id,
                primary_host_id=options.primary_host_id,
                base_topic=options.base_topic,
                mqtt=options.mqtt,
                stats_interval_s=options.stats_interval_s,
            ),
        )
        node.install()

    return install


__all__ = ["SparkplugOptions", "sparkplug_adapter"]
