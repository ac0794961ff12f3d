"""What Home Assistant documents about MQTT discovery, as tables for the checker.

The discovery platforms, HA's abbreviation tables (entity, device and origin keys), the
known and the required keys of each platform checked, the option values (availability
modes, entity categories, state classes, number and text limits) and the device classes
with their units and state classes (after homeassistant/components/sensor/const.py).
"""

from __future__ import annotations

# --- platforms -----------------------------------------------------------------------

PLATFORMS = frozenset(
    {
        "alarm_control_panel",
        "binary_sensor",
        "button",
        "camera",
        "climate",
        "cover",
        "device_automation",
        "device_tracker",
        "event",
        "fan",
        "humidifier",
        "image",
        "lawn_mower",
        "light",
        "lock",
        "notify",
        "number",
        "scene",
        "select",
        "sensor",
        "siren",
        "switch",
        "tag",
        "text",
        "update",
        "vacuum",
        "valve",
        "water_heater",
    }
)
"""Components MQTT discovery can configure (integrations/mqtt, "Configuration of MQTT
components via MQTT discovery")."""

NON_ENTITY_PLATFORMS = frozenset({"device_automation", "tag"})
"""Discoverable items that are not entities and so take no `unique_id`."""

# --- abbreviations (HA's tables, restricted to the keys of the platforms checked) -----

ABBREVIATIONS: dict[str, str] = {
    "avty": "availability",
    "avty_mode": "availability_mode",
    "avty_t": "availability_topic",
    "avty_tpl": "availability_template",
    "cmd_t": "command_topic",
    "cmd_tpl": "command_template",
    "cmps": "components",
    "def_ent_id": "default_entity_id",
    "dev": "device",
    "dev_cla": "device_class",
    "dsp_prc": "display_precision",
    "e": "encoding",
    "en": "enabled_by_default",
    "ent_cat": "entity_category",
    "ent_pic": "entity_picture",
    "exp_aft": "expire_after",
    "frc_upd": "force_update",
    "ic": "icon",
    "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template",
    "lrst_val_tpl": "last_reset_value_template",
    "max": "max",
    "min": "min",
    "mode": "mode",
    "name": "name",
    "o": "origin",
    "obj_id": "object_id",
    "off_dly": "off_delay",
    "ops": "options",
    "opt": "optimistic",
    "p": "platform",
    "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available",
    "pl_off": "payload_off",
    "pl_on": "payload_on",
    "pl_rst": "payload_reset",
    "ptrn": "pattern",
    "ret": "retain",
    "stat_cla": "state_class",
    "stat_off": "state_off",
    "stat_on": "state_on",
    "stat_t": "state_topic",
    "step": "step",
    "sug_dsp_prc": "suggested_display_precision",
    "t": "topic",
    "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
}

DEVICE_ABBREVIATIONS: dict[str, str] = {
    "cu": "configuration_url",
    "cns": "connections",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "mdl_id": "model_id",
    "hw": "hw_version",
    "sw": "sw_version",
    "sa": "suggested_area",
    "sn": "serial_number",
}

ORIGIN_ABBREVIATIONS: dict[str, str] = {"name": "name", "sw": "sw_version", "url": "support_url"}

DEVICE_KEYS = frozenset(DEVICE_ABBREVIATIONS.values()) | {"via_device"}
ORIGIN_KEYS = frozenset(ORIGIN_ABBREVIATIONS.values())

# --- keys per platform ---------------------------------------------------------------

AVAILABILITY_KEYS = frozenset(
    {
        "availability",
        "availability_mode",
        "availability_template",
        "availability_topic",
        "payload_available",
        "payload_not_available",
    }
)
"""The availability options, which every entity and a device-based payload's root take."""

COMMON_KEYS = AVAILABILITY_KEYS | frozenset(
    {
        "device",
        "origin",
        "enabled_by_default",
        "encoding",
        "entity_category",
        "entity_picture",
        "icon",
        "json_attributes_template",
        "json_attributes_topic",
        "name",
        "object_id",
        "default_entity_id",
        "qos",
        "unique_id",
        "~",
    }
)

PLATFORM_KEYS: dict[str, frozenset[str]] = {
    "sensor": frozenset(
        {
            "device_class",
            "expire_after",
            "force_update",
            "last_reset_value_template",
            "options",
            "state_class",
            "state_topic",
            "suggested_display_precision",
            "unit_of_measurement",
            "value_template",
        }
    ),
    "binary_sensor": frozenset(
        {
            "device_class",
            "expire_after",
            "force_update",
            "off_delay",
            "payload_off",
            "payload_on",
            "state_topic",
            "value_template",
        }
    ),
    "number": frozenset(
        {
            "command_template",
            "command_topic",
            "device_class",
            "max",
            "min",
            "mode",
            "optimistic",
            "payload_reset",
            "retain",
            "state_topic",
            "step",
            "unit_of_measurement",
            "value_template",
        }
    ),
    "switch": frozenset(
        {
            "command_template",
            "command_topic",
            "device_class",
            "optimistic",
            "payload_off",
            "payload_on",
            "retain",
            "state_off",
            "state_on",
            "state_topic",
            "value_template",
        }
    ),
    "text": frozenset(
        {
            "command_template",
            "command_topic",
            "max",
            "min",
            "mode",
            "pattern",
            "retain",
            "state_topic",
            "value_template",
        }
    ),
}

# light (JSON schema), button and climate, after HA's light.mqtt ("JSON schema"),
# button.mqtt and climate.mqtt configuration variables.
PLATFORM_KEYS["light"] = frozenset(
    {
        "brightness",
        "brightness_scale",
        "command_topic",
        "effect",
        "effect_list",
        "flash_time_long",
        "flash_time_short",
        "max_kelvin",
        "min_kelvin",
        "optimistic",
        "retain",
        "schema",
        "state_topic",
        "supported_color_modes",
        "transition",
        "white_scale",
    }
)
PLATFORM_KEYS["button"] = frozenset(
    {"command_template", "command_topic", "device_class", "payload_press", "retain"}
)
PLATFORM_KEYS["climate"] = frozenset(
    {
        "action_template",
        "action_topic",
        "current_humidity_template",
        "current_humidity_topic",
        "current_temperature_template",
        "current_temperature_topic",
        "initial",
        "max_humidity",
        "max_temp",
        "min_humidity",
        "min_temp",
        "mode_command_template",
        "mode_command_topic",
        "mode_state_template",
        "mode_state_topic",
        "modes",
        "optimistic",
        "precision",
        "retain",
        "temp_step",
        "temperature_command_template",
        "temperature_command_topic",
        "temperature_state_template",
        "temperature_state_topic",
        "temperature_unit",
    }
)
LIGHT_COLOR_MODES = frozenset(
    {"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}
)
CLIMATE_MODES = frozenset({"auto", "off", "cool", "heat", "dry", "fan_only"})
BUTTON_DEVICE_CLASSES = frozenset({"identify", "restart", "update"})
REQUIRED_KEYS: dict[str, frozenset[str]] = {
    "sensor": frozenset({"state_topic"}),
    "binary_sensor": frozenset({"state_topic"}),
    "number": frozenset({"command_topic"}),
    "switch": frozenset({"command_topic"}),
    "text": frozenset({"command_topic"}),
    "light": frozenset({"command_topic"}),
    "button": frozenset({"command_topic"}),
    "climate": frozenset(),
}

DEVICE_PAYLOAD_SHARED_KEYS = AVAILABILITY_KEYS | frozenset(
    {
        "command_topic",
        "state_topic",
        "qos",
        "encoding",
        "~",
    }
)
"""Options a device-based payload may set at its root for all components."""

# --- option values -------------------------------------------------------------------

AVAILABILITY_MODES = frozenset({"all", "any", "latest"})
ENTITY_CATEGORIES = frozenset({"config", "diagnostic"})
STATE_CLASSES = frozenset({"measurement", "measurement_angle", "total", "total_increasing"})
NUMBER_MODES = frozenset({"auto", "box", "slider"})
TEXT_MODES = frozenset({"text", "password"})
NUMBER_MIN_STEP = 1e-3
TEXT_MAX_LENGTH = 255

_ALL_STATE = STATE_CLASSES
_M = frozenset({"measurement"})
_TOTALS = frozenset({"total", "total_increasing"})
_UG = frozenset({"µg/m³"})

# SensorDeviceClass → (allowed units, allowed state classes), after HA's DEVICE_CLASS_UNITS
# and DEVICE_CLASS_STATE_CLASSES (homeassistant/components/sensor/const.py). None in the
# unit set means "no unit_of_measurement".
SENSOR_DEVICE_CLASSES: dict[str, tuple[frozenset[str | None], frozenset[str]]] = {
    "apparent_power": (frozenset({"VA"}), _M),
    "aqi": (frozenset({None}), _M),
    "atmospheric_pressure": (
        frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}),
        _M,
    ),
    "battery": (frozenset({"%"}), _M),
    "carbon_dioxide": (frozenset({"ppm"}), _M),
    "carbon_monoxide": (frozenset({"ppm"}), _M),
    "conductivity": (frozenset({"S/cm", "mS/cm", "µS/cm"}), _M),
    "current": (frozenset({"A", "mA"}), _M),
    "date": (frozenset({None}), frozenset()),
    "distance": (frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi"}), _ALL_STATE),
    "duration": (frozenset({"d", "h", "min", "s", "ms", "µs"}), _ALL_STATE),
    "energy": (
        frozenset(
            {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"}
            | {"cal", "kcal", "Mcal", "Gcal"}
        ),
        _TOTALS,
    ),
    "enum": (frozenset({None}), frozenset()),
    "frequency": (frozenset({"Hz", "kHz", "MHz", "GHz"}), _M),
    "humidity": (frozenset({"%"}), _M),
    "illuminance": (frozenset({"lx"}), _M),
    "irradiance": (frozenset({"W/m²", "BTU/(h⋅ft²)"}), _M),
    "moisture": (frozenset({"%"}), _M),
    "nitrogen_dioxide": (_UG, _M),
    "nitrogen_monoxide": (_UG, _M),
    "nitrous_oxide": (_UG, _M),
    "ozone": (_UG, _M),
    "ph": (frozenset({None}), _M),
    "pm1": (_UG, _M),
    "pm10": (_UG, _M),
    "pm25": (_UG, _M),
    "power": (frozenset({"mW", "W", "kW", "MW", "GW", "TW"}), _M),
    "power_factor": (frozenset({"%", None}), _M),
    "pressure": (
        frozenset({"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}),
        _M,
    ),
    "signal_strength": (frozenset({"dB", "dBm"}), _M),
    "sound_pressure": (frozenset({"dB", "dBA"}), _M),
    "speed": (
        frozenset({"ft/s", "in/d", "in/h", "in/s", "km/h", "kn", "m/s", "mph", "mm/d"})
        | {"mm/h", "mm/s", "Beaufort"},
        _M,
    ),
    "sulphur_dioxide": (_UG, _M),
    "temperature": (frozenset({"°C", "°F", "K"}), _M),
    "timestamp": (frozenset({None}), frozenset()),
    "volatile_organic_compounds": (_UG, _M),
    "volatile_organic_compounds_parts": (frozenset({"ppb", "ppm"}), _M),
    "voltage": (frozenset({"V", "mV", "µV", "kV", "MV"}), _M),
    "volume_flow_rate": (frozenset({"m³/h", "ft³/min", "L/min", "gal/min", "mL/s"}), _M),
    "weight": (
        frozenset({"µg", "mg", "g", "kg", "oz", "lb", "st"}),
        frozenset({"measurement", "total", "total_increasing"}),
    ),
    "wind_direction": (frozenset({"°"}), frozenset({"measurement_angle"})),
    "wind_speed": (frozenset({"Beaufort", "ft/s", "km/h", "kn", "m/s", "mph"}), _M),
}
NON_NUMERIC_SENSOR_CLASSES = frozenset({"date", "enum", "timestamp"})

# Number device classes mirror the numeric sensor classes (HA keeps them aligned).
NUMBER_DEVICE_CLASSES = {
    k: v for k, v in SENSOR_DEVICE_CLASSES.items() if k not in NON_NUMERIC_SENSOR_CLASSES
}

BINARY_SENSOR_DEVICE_CLASSES = frozenset(
    {
        "battery",
        "battery_charging",
        "carbon_monoxide",
        "cold",
        "connectivity",
        "door",
        "garage_door",
        "gas",
        "heat",
        "light",
        "lock",
        "moisture",
        "motion",
        "moving",
        "occupancy",
        "opening",
        "plug",
        "power",
        "presence",
        "problem",
        "running",
        "safety",
        "smoke",
        "sound",
        "tamper",
        "update",
        "vibration",
        "window",
    }
)
SWITCH_DEVICE_CLASSES = frozenset({"outlet", "switch"})
