"""Command topics beyond datastreams: pins, modules and raw packets (`docs/topics.md` §4, §7).

`commands_plugin(bridge)` registers, for every board:

- handlers for `pin/{n}/mode/set`, `pin/{n}/set`, `pin/{n}/get`, `pin/{n}/subscribe/set`
  (`handlers.pins`), `module/{mod}/{command}` (`handlers.modules`) and `cmd[/{tt}]`
  (`handlers.raw`);
- an event hook for every event type: typed MOD_EVENT topics and the raw `evt/{tt}`
  mirror;
- a handshake hook, inserted *first* so the order of `docs/architecture.md` §4 holds (RESET +
  STREAM_STOP by the session, then pin modes and subscriptions, then the replay of
  retained datastreams): it replaces the analog-only hook app.py used to install;
- an offline hook stopping the bridge-side pin polls, and one background job that cancels
  every poll when the bridge stops.

Outcomes (results, error reports, MQTT 5 response topics, `transaction` echo) are
published by `BoardBridge.execute`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conduyt_bridge.device.session import DeviceSession
from conduyt_bridge.northbound.conduyt.board import BoardBridge
from conduyt_bridge.northbound.conduyt.handlers.modules import handle_module
from conduyt_bridge.northbound.conduyt.handlers.pins import PinController, TaskSet
from conduyt_bridge.northbound.conduyt.handlers.raw import RawController
from conduyt_bridge.northbound.conduyt.topics import CommandKind
from conduyt_bridge.protocol.constants import PacketType

if TYPE_CHECKING:
    from conduyt_bridge.app.daemon import Bridge


@dataclass(frozen=True, slots=True)
class BoardCommands:
    """The command controllers installed on one board."""

    board: BoardBridge
    pins: PinController
    raw: RawController


def install(board: BoardBridge, session: DeviceSession, tasks: TaskSet) -> BoardCommands:
    """Register the pin, module and raw handlers and hooks on one board and its session."""
    pins = PinController(board, tasks)
    raw = RawController(board, pins)
    board.handlers.update(
        {
            CommandKind.PIN_MODE: pins.handle_mode,
            CommandKind.PIN_SET: pins.handle_set,
            CommandKind.PIN_GET: pins.handle_get,
            CommandKind.PIN_SUBSCRIBE: pins.handle_subscribe,
            CommandKind.MODULE: handle_module,
            CommandKind.RAW: raw.handle_raw,
        }
    )
    # BoardBridge calls the type's hook or else the catch-all (-1), never both: register
    # the same dispatcher for MOD_EVENT and for everything else.
    board.event_hooks[-1] = raw.on_event
    board.event_hooks[PacketType.MOD_EVENT] = raw.on_event
    board.offline_hooks.append(pins.on_offline)
    session.handshake_hooks.insert(0, pins.on_handshake)
    pins.edge_listeners.append(raw.on_edge)
    return BoardCommands(board, pins, raw)


def commands_plugin(bridge: Bridge) -> None:
    """Plugin: pin, module and raw packet commands for every board of `bridge`."""
    tasks = TaskSet()
    bridge.background.append(tasks.run)
    for dev, board in bridge.boards.items():
        install(board, bridge.sessions[dev], tasks)


__all__ = ["BoardCommands", "commands_plugin", "install"]
