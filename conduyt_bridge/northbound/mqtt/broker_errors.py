"""Broker link failures in words a user can act on: CONNACK refusals by reason code, and
broker URLs with their userinfo hidden before they reach a log line (`docs/topics.md`,
`docs/deployment.md`)."""

from __future__ import annotations

from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from conduyt_bridge.errors import describe_exception
from conduyt_bridge.northbound.mqtt.urls import redact_url

__all__ = ["describe_broker_error", "redact_url"]


_LOGIN_REFUSED = {134, 135}
"""CONNACK reason codes of a refused login: Bad user name or password, Not authorized
(what Mosquitto sends for a wrong password); MQTT 3.1.1's return codes 4 and 5 are the
same two."""


_V311_CONNACK = {1: 132, 2: 133, 3: 136, 4: 134, 5: 135}
"""MQTT 3.1.1 CONNACK return codes as the MQTT 5 reason codes that mean the same."""


def describe_broker_error(exc: BaseException, username: str | None = None) -> str:
    """What went wrong with the broker link, in words a user can act on.

    A login the broker refused says so from the CONNACK reason code
    (`broker refused the login: bad username or password`); other refusals name their
    reason and code; anything else is `describe_exception`.
    """
    rc = exc.rc if isinstance(exc, MqttConnectError) else None
    value = getattr(rc, "value", rc)
    if not isinstance(value, int) or value == 0:
        return describe_exception(exc)
    value = _V311_CONNACK.get(value, value)
    if value in _LOGIN_REFUSED:
        if value == 135 and not username:
            return (
                "broker refused the login: not authorized (anonymous access is off: set "
                "[mqtt] username and password)"
            )
        return "broker refused the login: bad username or password"
    try:
        name = str(ReasonCode(PacketTypes.CONNACK, identifier=value))
    except (KeyError, ValueError):  # not a CONNACK code paho knows
        name = "unknown reason"
    return f"broker refused the connection: {name} (CONNACK code {value})"
