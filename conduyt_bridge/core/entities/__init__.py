"""Declared entities (`[[devices.entities]]`, `docs/entities.md`): pins and modules of a
board presented as switches, lights, sensors, numbers and a thermostat — the specs
(`spec`), the checks against a HELLO_RESP (`checks`), command values (`values`) and the
per-board runtime (`engine`, `climate`)."""
