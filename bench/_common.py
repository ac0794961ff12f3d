"""Helpers the bench scripts share (`bench/e2e.py`, `bench/hostile.py`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.broker import MosquittoProcess, find_mosquitto


def broker_from_env() -> tuple[MosquittoProcess | None, str]:
    """The broker to measure against: $MQTT_URL if set (then no process of ours, `None`),
    else a private mosquitto, started here; the caller closes it. Exits if there is none."""
    broker: MosquittoProcess | None = None
    url = os.environ.get("MQTT_URL")
    if not url:
        binary = find_mosquitto()
        if binary is None:
            raise SystemExit("no MQTT_URL and no mosquitto binary: apt-get install mosquitto")
        broker = MosquittoProcess(binary)
        broker.start()
        url = broker.url
    return broker, url
