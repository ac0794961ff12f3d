"""The README's example of every declared entity kind is a valid config for the
`sim://garage` profile it names: every entry loads and passes the board checks."""

from __future__ import annotations

import re
from pathlib import Path

from conduyt_bridge.app.config import load_settings
from conduyt_bridge.core.entities.checks import entity_problems
from conduyt_bridge.simulator.profiles import get_profile

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_entities_toml() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- readme-entities -->\n```toml\n(.*?)```", text, re.S)
    assert found is not None, "README lost its <!-- readme-entities --> example"
    return found.group(1)


def test_readme_entities_example_loads_with_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(readme_entities_toml(), encoding="utf-8")
    settings = load_settings(path)
    (device,) = settings.devices
    kinds = {spec.kind for spec in device.entity_specs}
    assert kinds == {
        "switch",
        "binary_sensor",
        "light",
        "sensor",
        "button",
        "servo",
        "neopixel",
        "dht",
        "encoder",
        "stepper",
        "pid",
        "climate",
    }
    # and the garage board serves every one of them (none would be refused)
    assert entity_problems(get_profile("garage").hello, device.entity_specs) == {}
