#!/usr/bin/env python3
"""Screenshots of the web console (`docs/console.md`) at desktop and phone width.

Starts a Bridge with two simulated boards (`sim://thermostat`, `sim://kitchen`) and the
HTTP endpoint on a free loopback port, against the broker in `MQTT_URL` or, without it, a
local `mosquitto` on a free port; waits for the boards' values; sends one out-of-range
setpoint through the console so that the refusal shows beside the control and in the
error list; then screenshots the page in headless Chromium (Playwright, Debian's
`/usr/bin/chromium`) at 1280x800 and 390x844 (CSS pixels).

    python scripts/screenshots.py            # docs/screenshots/console-{desktop,phone}.png
    python scripts/screenshots.py --out-dir /tmp/shots

Exit code 0 and one line per picture starting with "screenshot OK" on success.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import async_playwright

from conduyt_bridge.app.config import Settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.demo import MosquittoBroker, find_mosquitto, free_port

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
"""Viewport of each screenshot, CSS pixels."""

BASE_TOPIC = "conduyt-screenshot"
CHROMIUM = "/usr/bin/chromium"


async def _wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def capture(mqtt_url: str, out_dir: Path, chromium: str) -> list[Path]:
    """Run the bridge and write the screenshots; returns their paths."""
    http_port = free_port()
    settings = Settings(
        bridge={"base_topic": BASE_TOPIC, "log_level": "warning", "id": "greenhouse"},
        mqtt={"url": mqtt_url, "client_id": f"console-screenshot-{os.getpid()}"},
        homeassistant={"enabled": False},
        devices=[
            {"id": "thermostat", "port": "sim://thermostat"},
            {"id": "kitchen", "port": "sim://kitchen"},
        ],
        http={"listen": f"127.0.0.1:{http_port}"},
    )
    bridge = Bridge(settings)
    task = asyncio.create_task(bridge.run())
    shots = []
    try:
        await asyncio.wait_for(bridge.mqtt.wait_connected(), 10)
        thermostat, kitchen = bridge.boards["thermostat"], bridge.boards["kitchen"]
        await _wait(
            lambda: "humidity_percent" in thermostat.values and "door_open" in kitchen.values,
            10,
            "the boards' values",
        )
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium)
            try:
                for name, (width, height) in SIZES.items():
                    page = await browser.new_page(viewport={"width": width, "height": height})
                    await page.goto(f"http://127.0.0.1:{http_port}/")
                    board = page.get_by_role("region", name="thermostat")
                    setpoint = board.get_by_role("spinbutton", name="setpoint")
                    await setpoint.fill("2e9")
                    await board.get_by_role("button", name="set setpoint").click()
                    await board.get_by_role("alert").first.wait_for()
                    await page.get_by_text("live", exact=True).wait_for()
                    path = out_dir / f"console-{name}.png"
                    await page.screenshot(path=str(path))
                    shots.append(path)
                    await page.close()
            finally:
                await browser.close()
        return shots
    finally:
        bridge.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


async def main_async(out_dir: Path, chromium: str) -> int:
    url = os.environ.get("MQTT_URL")
    broker: MosquittoBroker | None = None
    if not url:
        binary = find_mosquitto()
        if binary is None:
            print("no broker: set MQTT_URL or install mosquitto", file=sys.stderr)
            return 1
        broker = MosquittoBroker(binary, "127.0.0.1", free_port())
        await broker.start()
        url = f"mqtt://127.0.0.1:{broker.port}"
    try:
        shots = await capture(url, out_dir, chromium)
    except (RuntimeError, TimeoutError) as exc:
        print(f"screenshot FAILED: {exc}")
        return 1
    finally:
        if broker is not None:
            await broker.stop()
    for path in shots:
        print(f"screenshot OK: {path} ({path.stat().st_size} bytes)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "screenshots",
        help="folder for console-desktop.png and console-phone.png",
    )
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium binary")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(main_async(args.out_dir, args.chromium))


if __name__ == "__main__":
    raise SystemExit(main())
