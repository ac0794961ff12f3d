"""Optional parts of the Bridge that register themselves on it (command kinds, discovery,
HTTP): kept out of app.py so the wiring stays small."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conduyt_bridge.app.daemon import Bridge


def default_plugins() -> list[Callable[[Bridge], None]]:
    """The plugins every bridge runs with."""
    from conduyt_bridge.app.http import http_plugin
    from conduyt_bridge.northbound.conduyt.handlers import commands_plugin
    from conduyt_bridge.northbound.homeassistant.adapter import discovery_plugin

    return [commands_plugin, discovery_plugin, http_plugin]
