"""The Homie adapter's settings (`docs/homie.md` §1): `[homie]`, with the `[mqtt]`
settings for its own session and the root device ID."""

from __future__ import annotations

from dataclasses import dataclass

from conduyt_bridge.northbound.homie.ids import homie_id
from conduyt_bridge.northbound.mqtt.client import MqttSettings


@dataclass(frozen=True, slots=True)
class HomieOptions:
    """The adapter's settings: `[homie] enabled`, `prefix` (the Homie domain), `device_id`
    (the root device ID, `""`: from the MQTT client id), the `[mqtt]` settings for its own
    session, `[bridge] base_topic` (where refusals are reported) and the bridge version."""

    mqtt: MqttSettings
    enabled: bool = False
    prefix: str = "homie"
    device_id: str = ""
    base_topic: str = "conduyt"
    bridge_version: str = ""


def root_device_id(options: HomieOptions) -> str:
    """The root device ID: `device_id`, or the MQTT client id as a Homie ID
    (`Conduyt_Bridge` → `conduyt-bridge`)."""
    return options.device_id or homie_id(options.mqtt.client_id, "conduyt-bridge")


__all__ = ["HomieOptions", "root_device_id"]
