"""Home Assistant discovery wired into the Bridge (payloads are built by
`bridge.mqtt.discovery`; this module decides when to publish, replace and remove them).

- on every broker (re)connect, and when HA announces `online` on `{prefix}/status`:
  the bridge device and every board that has completed a handshake;
- when a board comes online: its configs, with removals for entities that vanished
  (another firmware on the port) and a sweep of retained configs left by an earlier run
  (so HA never keeps ghost entities);
- with discovery disabled: a sweep that removes everything this bridge published before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiomqtt
import structlog

from bridge import __version__
from bridge.board import BoardBridge
from bridge.mqtt.discovery import (
    BoardDiscovery,
    DatastreamHints,
    DiscoveryConfig,
    DiscoveryMessage,
    board_messages,
    board_node_id,
    bridge_messages,
    bridge_node_id,
    removal_messages,
    status_topic,
)
from bridge.protocol.hello import HelloResp

if TYPE_CHECKING:
    from bridge.app import Bridge

log = structlog.stdlib.get_logger("bridge.ha")

SHUTDOWN_WAIT_S = 1.0
"""How long shutdown waits for cancelled discovery sweeps to finish."""


class Discovery:
    """Publishes, refreshes and removes this bridge's Home Assistant discovery configs."""

    def __init__(self, bridge: Bridge) -> None:
        s = bridge.settings
        self.bridge = bridge
        self.enabled = s.homeassistant.enabled
        self.cfg = DiscoveryConfig(
            prefix=s.homeassistant.discovery_prefix,
            mode=s.homeassistant.discovery_mode,
            base_topic=s.bridge.base_topic,
            bridge_id=s.mqtt.client_id,
            bridge_version=__version__,
            payload_format=s.mqtt.payload_format,
        )
        self.published: dict[str, list[DiscoveryMessage]] = {}
        self._swept: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Register the hooks on the bridge and its boards."""
        self.bridge.connect_hooks.append(self.on_connect)
        self.bridge.shutdown_hooks.append(self.close)
        if not self.enabled:
            return
        self.bridge.message_hooks[status_topic(self.cfg)] = self.on_ha_status
        for board in self.bridge.boards.values():
            board.change_hooks.append(self.on_board_online)

    # ---- hooks ------------------------------------------------------------------------------

    async def on_connect(self) -> None:
        if not self.enabled:
            nodes = [bridge_node_id(self.cfg)]
            nodes += [board_node_id(self.cfg, dev) for dev in self.bridge.boards]
            self._spawn(self.sweep(nodes, keep=set()))
            return
        await self.bridge.mqtt.subscribe([status_topic(self.cfg)])
        self.publish_all()
        if "bridge" not in self._swept:
            self._swept.add("bridge")
            keep = {m.topic for m in bridge_messages(self.cfg)}
            self._spawn(self.sweep([bridge_node_id(self.cfg)], keep))

    async def on_ha_status(self, message: aiomqtt.Message) -> None:
        if message.payload in (b"online", "online"):
            log.info("Home Assistant is online: publishing discovery again")
            self.publish_all()

    async def on_board_online(self, board: BoardBridge, hello: HelloResp, changed: bool) -> None:
        new = board_messages(self.cfg, self._board(board, hello))
        old = self.published.get(board.dev, [])
        for msg in removal_messages(self.cfg, old, new):
            self._publish(msg)
        for msg in new:
            self._publish(msg)
        self.published[board.dev] = new
        if board.dev not in self._swept:
            self._swept.add(board.dev)
            keep = {m.topic for m in new}
            self._spawn(self.sweep([board_node_id(self.cfg, board.dev)], keep))

    # ---- publishing -------------------------------------------------------------------------

    def publish_all(self) -> None:
        """Publish the bridge device and every board known so far."""
        for msg in bridge_messages(self.cfg):
            self._publish(msg)
        for messages in self.published.values():
            for msg in messages:
                self._publish(msg)

    def _publish(self, msg: DiscoveryMessage) -> None:
        # Not coalesced: a removal and the clean config on the same topic must both go out.
        self.bridge.mqtt.publish(msg.topic, msg.payload, qos=1, retain=msg.retain, coalesce=False)

    def _board(self, board: BoardBridge, hello: HelloResp) -> BoardDiscovery:
        hints = {
            name: DatastreamHints(name=opt.name, expire_after_s=opt.expire_after_s)
            for name, opt in board.config.datastreams.items()
        }
        return BoardDiscovery(
            dev=board.dev,
            hello=hello,
            port=board.config.port,
            read_only=board.config.read_only,
            hints=hints,
        )

    async def sweep(self, nodes: Sequence[str], keep: set[str]) -> list[str]:
        """Remove retained discovery configs of `nodes` (in either discovery mode) whose
        topic is not in `keep`; returns the topics cleared.

        Uses a short-lived second connection so the retained configs are delivered to it
        alone (the main session's subscriptions stay as they are).
        """
        prefix = self.cfg.prefix
        filters = []
        for node in nodes:
            filters += [f"{prefix}/device/{node}/config", f"{prefix}/+/{node}/+/config"]
        try:
            found = await self.bridge.mqtt.fetch_retained(filters)
        except aiomqtt.MqttError as exc:
            log.info("discovery sweep skipped", error=str(exc))
            return []
        stale = [t for t in found if t not in keep]
        for topic in stale:
            self.bridge.mqtt.publish(topic, b"", qos=1, retain=True)
        if stale:
            log.info("removed stale discovery configs", count=len(stale))
        return stale

    async def close(self) -> None:
        """Cancel sweeps still under way (their helper connections close with them)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a helper connection cancelled mid-handshake may take its client's
            # full timeout to close, and shutdown must not wait for that.
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def discovery_plugin(bridge: Bridge) -> None:
    """Plugin: Home Assistant discovery for `bridge` (also sweeps when disabled)."""
    Discovery(bridge).install()
