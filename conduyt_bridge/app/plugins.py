"""The adapters every bridge runs with, built from the settings: one line each.

A new northbound convention (Homie, Sparkplug B…) is its own folder under
`conduyt_bridge/northbound/` with an adapter factory, plus one line here
(`docs/architecture.md` §2).
"""

from __future__ import annotations

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.http import http_adapter
from conduyt_bridge.northbound.conduyt.adapter import ConduytOptions, conduyt_adapter
from conduyt_bridge.northbound.homeassistant.adapter import (
    HomeAssistantOptions,
    homeassistant_adapter,
)
from conduyt_bridge.northbound.homeassistant.discovery import DiscoveryConfig
from conduyt_bridge.northbound.host import Adapter
from conduyt_bridge.version import __version__


def conduyt_options(settings: Settings) -> ConduytOptions:
    """The Conduyt layout's options from `[bridge]` and `[mqtt]`."""
    return ConduytOptions(
        base_topic=settings.bridge.base_topic,
        payload_format=settings.mqtt.payload_format,
        health_interval_s=settings.bridge.health_interval_s,
    )


def homeassistant_options(settings: Settings) -> HomeAssistantOptions:
    """Home Assistant discovery's options from `[homeassistant]`, `[bridge]` and `[mqtt]`."""
    ha = settings.homeassistant
    return HomeAssistantOptions(
        enabled=ha.enabled,
        discovery=DiscoveryConfig(
            prefix=ha.discovery_prefix,
            mode=ha.discovery_mode,
            base_topic=settings.bridge.base_topic,
            bridge_id=settings.mqtt.client_id,
            bridge_version=__version__,
            payload_format=settings.mqtt.payload_format,
        ),
    )


def default_adapters(settings: Settings) -> list[Adapter]:
    """The adapters of a bridge, in the order they are installed (the Conduyt layout
    first: its connect hook subscribes to the command topics before anything else)."""
    return [
        conduyt_adapter(conduyt_options(settings)),
        homeassistant_adapter(homeassistant_options(settings)),
        http_adapter(settings),
    ]


__all__ = ["conduyt_options", "default_adapters", "homeassistant_options"]
