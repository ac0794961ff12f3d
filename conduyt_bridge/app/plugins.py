"""The adapters every bridge runs with, built from the settings: one line each.

A new northbound convention (Homie, Sparkplug B…) is its own folder under
`conduyt_bridge/northbound/` with an adapter factory, plus one line here
(`docs/architecture.md` §2).
"""

from __future__ import annotations

import socket

from conduyt_bridge.app.config import Settings
from conduyt_bridge.northbound.conduyt.adapter import ConduytOptions, conduyt_adapter
from conduyt_bridge.northbound.homeassistant.adapter import (
    HomeAssistantOptions,
    homeassistant_adapter,
)
from conduyt_bridge.northbound.homeassistant.discovery import DiscoveryConfig
from conduyt_bridge.northbound.homie.adapter import HomieOptions, homie_adapter
from conduyt_bridge.northbound.host import Adapter
from conduyt_bridge.northbound.sparkplug.adapter import SparkplugOptions, sparkplug_adapter
from conduyt_bridge.version import __version__


def conduyt_options(settings: Settings) -> ConduytOptions:
    """The Conduyt layout's options from `[bridge]` and `[mqtt]`."""
    return ConduytOptions(
        base_topic=settings.bridge.base_topic,
        payload_format=settings.mqtt.payload_format,
        health_interval_s=settings.bridge.health_interval_s,
        bridge_id=settings.bridge.id,
    )


_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def console_url(settings: Settings, hostname: str | None = None) -> str | None:
    """The console's URL for HA's `configuration_url`, `http://{host}:{port}/`, when
    `[http] listen` is set, else None (`docs/home-assistant.md`, "Device names"). A
    wildcard listen address (all interfaces: empty, `0.0.0.0`, `::`) is replaced by
    `hostname` (default: this machine's host name), an IPv6 address gets brackets."""
    http = settings.http
    if not http.enabled:
        return None
    host = http.host
    if host in _WILDCARD_HOSTS:
        host = hostname if hostname is not None else socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http.port}/"


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
            gateway_id=settings.bridge.id,
            bridge_version=__version__,
            payload_format=settings.mqtt.payload_format,
            configuration_url=console_url(settings),
        ),
    )


def sparkplug_options(settings: Settings) -> SparkplugOptions:
    """The Sparkplug B edge node's options from `[sparkplug]`, `[bridge]` and `[mqtt]` (its
    own connection starts a clean session: `session_expiry_s` 0; `edge_node_id` defaults
    to `[bridge] id`, unique in a fleet: `docs/sparkplug.md` §1)."""
    spb = settings.sparkplug
    return SparkplugOptions(
        enabled=spb.enabled,
        group_id=spb.group_id,
        edge_node_id=spb.edge_node_id if spb.edge_node_id is not None else settings.bridge.id,
        primary_host_id=spb.primary_host_id,
        base_topic=settings.bridge.base_topic,
        mqtt=settings.mqtt.model_copy(update={"session_expiry_s": 0}),
        stats_interval_s=spb.stats_interval_s,
    )


def homie_options(settings: Settings) -> HomieOptions:
    """The Homie adapter's options from `[homie]`, `[mqtt]` and `[bridge]`."""
    homie = settings.homie
    return HomieOptions(
        mqtt=settings.mqtt,
        enabled=homie.enabled,
        prefix=homie.prefix,
        device_id=homie.device_id,
        base_topic=settings.bridge.base_topic,
        bridge_version=__version__,
    )


def http_adapter(settings: Settings) -> Adapter:
    """`conduyt_bridge.app.http.http_adapter`, imported only when `[http] listen` is set:
    aiohttp and the web console cost ~9 MiB of RSS that a bridge without HTTP never uses
    (`docs/architecture.md` §6.1)."""
    if not settings.http.enabled:
        return lambda host: None
    from conduyt_bridge.app.http import http_adapter as adapter

    return adapter(settings)


def default_adapters(settings: Settings) -> list[Adapter]:
    """The adapters of a bridge, in the order they are installed (the Conduyt layout
    first: its connect hook subscribes to the command topics before anything else)."""
    return [
        conduyt_adapter(conduyt_options(settings)),
        homeassistant_adapter(homeassistant_options(settings)),
        http_adapter(settings),
        sparkplug_adapter(sparkplug_options(settings)),
        homie_adapter(homie_options(settings)),
    ]


__all__ = [
    "conduyt_options",
    "console_url",
    "default_adapters",
    "homeassistant_options",
    "homie_options",
    "http_adapter",
    "sparkplug_options",
]
