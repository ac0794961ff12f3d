"""A compact checker of Home Assistant MQTT discovery messages, for the test suite.

Installing Home Assistant to validate a few JSON documents is out of proportion, so this
package encodes the documented facts the bridge relies on, and `validate_discovery`
returns every violation it finds (an empty list means "HA would accept this"):

* the topic: `<prefix>/<component>/[<node_id>/]<object_id>/config`, ids from
  `[a-zA-Z0-9_-]`, component `device` or one of the MQTT discovery platforms
  (home-assistant.io `integrations/mqtt` "Discovery topic");
* abbreviations: expanded with HA's tables (entity keys, device keys, origin keys), an
  abbreviation and its long form may not both appear (`integrations/mqtt` "Supported
  abbreviations");
* device-based payloads (`{prefix}/device/...`): `device`, `origin` and `components`
  required at the root; each component needs `platform` and, for entities, `unique_id`;
  `{"p": ...}` alone is the documented removal of one component; device/origin cannot
  be set per component;
* per platform (sensor, binary_sensor, number, switch, text): the known keys (anything
  else is reported, stricter than HA, which ignores unknown keys silently: a typo would
  otherwise go unnoticed), the required keys (`state_topic` for sensors,
  `command_topic` for number/switch/text), the option values documented on
  `integrations/<platform>.mqtt` and in HA's sensor constants (device classes and their
  units, state classes, number step >= 0.001, text max <= 255, availability modes);
* the device block needs `identifiers` or `connections`; the origin block needs `name`.

Our policy on top of HA (reported the same way): an entity with a device must have a
`unique_id` (HA ignores the device otherwise), command topics carry no wildcards.

The package: `tables` holds HA's documented facts, `checks` the checks of one part of a
payload, `validate` the entry points re-exported here.
"""

from __future__ import annotations

from .tables import SENSOR_DEVICE_CLASSES
from .validate import parse_topic, validate_discovery, validate_message

__all__ = ["SENSOR_DEVICE_CLASSES", "parse_topic", "validate_discovery", "validate_message"]
