"""What the board core and the adapters read of a board's configuration.

Structural types only: the daemon's pydantic `DeviceConfig` (`conduyt_bridge/app/config.py`)
satisfies them as it is, and a test or another host can pass any object with these
attributes, so the core never imports the configuration layer. Keys and defaults are
documented in `docs/architecture.md` §8 and the README.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from conduyt_bridge.core.entities.spec import EntitySpec


class PinSubscriptionConfig(Protocol):
    """One `[[devices.pins]]` entry."""

    @property
    def pin(self) -> int: ...

    @property
    def mode(self) -> str:
        """`change`, `rising`, `falling` or `analog_poll`."""
        ...

    @property
    def interval_ms(self) -> int: ...

    @property
    def threshold(self) -> int:
        """Raw ADC counts (analog_poll only)."""
        ...


class DatastreamConfig(Protocol):
    """One `[devices.datastreams.<name>]` table."""

    @property
    def name(self) -> str | None:
        """Display name (Home Assistant)."""
        ...

    @property
    def expire_after_s(self) -> int | None: ...


class BoardConfig(Protocol):
    """One `[[devices]]` entry, as the core and the adapters read it."""

    @property
    def device_id(self) -> str: ...

    @property
    def port(self) -> str: ...

    @property
    def discovery_id(self) -> str | None:
        """The id the board's Home Assistant unique ids are built from when it differs
        from `device_id` (kept by a rename, `docs/requests.md` §3); None: `device_id`."""
        ...

    @property
    def read_only(self) -> bool: ...

    @property
    def allow_raw(self) -> bool: ...

    @property
    def raw_mirror(self) -> bool: ...

    @property
    def allow_ota(self) -> bool: ...

    @property
    def string_encoding(self) -> str:
        """`u16_prefix`, `raw` or `nul` (`docs/protocol.md` §5.4)."""
        ...

    @property
    def pins(self) -> Sequence[PinSubscriptionConfig]: ...

    @property
    def datastreams(self) -> Mapping[str, DatastreamConfig]: ...

    @property
    def entity_specs(self) -> Sequence[EntitySpec]:
        """`[[devices.entities]]`: declared entities (`docs/entities.md`)."""
        ...


__all__ = ["BoardConfig", "DatastreamConfig", "PinSubscriptionConfig"]
