"""The README's console and request API section keeps what issue 12 asks of it: the
console screenshots it references (desktop and phone width) exist as PNG files, the
static files the console serves load nothing from the internet, and the README says that
the broker's ACL on the request topics is the access control, as the shipped ACL does."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
STATIC = ROOT / "conduyt_bridge" / "app" / "web" / "static"
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_referenced_console_screenshots_exist() -> None:
    text = README.read_text(encoding="utf-8")
    shots = re.findall(r"docs/screenshots/[\w.-]+\.png", text)
    assert sorted(set(shots)) == [
        "docs/screenshots/console-desktop.png",
        "docs/screenshots/console-phone.png",
    ]
    for shot in shots:
        assert (ROOT / shot).read_bytes()[:8] == PNG, shot


def test_the_console_loads_nothing_from_the_internet() -> None:
    files = sorted(STATIC.iterdir())
    assert {f.suffix for f in files} <= {".html", ".css", ".js"}
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text) == [], f.name


def test_the_readme_and_the_acl_name_the_request_api_access_control() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "The broker's ACL on `conduyt/bridge/+/request/#` is the access control" in text
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text(encoding="utf-8")
    assert "user conduyt-admin\ntopic write conduyt/bridge/+/request/#\n" in acl
