"""What the request actions use of the bridge (`conduyt_bridge.app.daemon.Bridge`), as a
protocol, so that the actions do not import the daemon that installs them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from conduyt_bridge.app.config import DeviceConfig, Settings
from conduyt_bridge.core.board import Board

__all__ = ["BridgeControl"]


class BridgeControl(Protocol):
    """The running bridge as the request API changes it (`docs/architecture.md` §11)."""

    settings: Settings
    """The running settings; a change that succeeded replaces its `devices`."""

    @property
    def config_path(self) -> Path | None:
        """The config file, None for a bridge configured without one."""
        ...

    async def wait_running(self, timeout_s: float) -> bool:
        """Wait (bounded, s) until the bridge has started its boards; False if it did not."""
        ...

    @property
    def stopping(self) -> bool:
        """True once the bridge is shutting down (no change is started then)."""
        ...

    @property
    def boards(self) -> Mapping[str, Board]:
        """Every board by id."""
        ...

    async def add_board(self, device: DeviceConfig) -> Board:
        """Add and start a board."""
        ...

    async def remove_board(self, dev: str, successor: str | None = None) -> Board:
        """Stop and remove a board (`successor`: the id taking its place)."""
        ...
