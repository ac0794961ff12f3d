"""End-to-end tests: every test here talks to a real broker, a pty, a subprocess or a
network serial server, so each is marked `broker` (`pytest -m "not broker"` runs the unit
tests alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.broker)
