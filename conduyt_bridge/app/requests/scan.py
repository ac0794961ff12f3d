"""`scan`: the `conduyt-bridge scan` probe as a request (`docs/requests.md` §3.5).

`{"ports"?: [...], "timeout_s"?: s}`: every port must match `[bridge] allowed_ports` (a
probe opens the port and writes HELLO into it); without `ports`, the machine's candidate
serial ports that match are probed. A port a running board uses is not probed (the probe
would disturb the board): its result says which board has it. `sim://` boards are not
found by a scan.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from conduyt_bridge.app import scan as probe
from conduyt_bridge.app.requests.errors import RequestError
from conduyt_bridge.app.requests.host import BridgeControl
from conduyt_bridge.app.requests.ports import check_port, port_allowed

__all__ = ["MAX_SCAN_PORTS", "MAX_TIMEOUT_S", "scan_ports"]

MAX_TIMEOUT_S = 10.0
"""Longest `timeout_s` a scan request may ask for, s."""

MAX_SCAN_PORTS = 64
"""Most ports one scan request may name."""


def _timeout(payload: Mapping[str, Any]) -> float:
    value = payload.get("timeout_s", probe.DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError("'timeout_s' must be a number of seconds")
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise RequestError(f"'timeout_s' must be above 0 and at most {MAX_TIMEOUT_S:g} s")
    return float(value)


def _ports(payload: Mapping[str, Any], allowed: list[str]) -> list[str]:
    ports = payload.get("ports")
    if ports is None:
        return [port for port in probe.candidate_ports() if port_allowed(port, allowed)]
    if not isinstance(ports, list) or not all(isinstance(p, str) and p for p in ports):
        raise RequestError("'ports' must be a list of port strings")
    if len(ports) > MAX_SCAN_PORTS:
        raise RequestError(f"'ports' lists {len(ports)} ports: at most {MAX_SCAN_PORTS}")
    for port in ports:
        if port.startswith(("sim://", "tcp://", "listen://")):
            raise RequestError(f"port {port!r} cannot be scanned: only serial ports can")
        check_port(port, allowed)
    return list(dict.fromkeys(ports))


async def scan_ports(bridge: BridgeControl, payload: Mapping[str, Any]) -> Any:
    """`{"results": [...]}`, one entry per port in the form of `conduyt-bridge scan
    --json` (`ok`, `error`, `firmware`, `datastreams`…)."""
    timeout_s = _timeout(payload)
    ports = _ports(payload, bridge.settings.bridge.allowed_ports)
    # realpath of /dev entries (by-id links) does not block on I/O worth a thread.
    real = os.path.realpath
    in_use = {real(b.config.port): dev for dev, b in bridge.boards.items()}
    busy = {p: in_use[real(p)] for p in ports if real(p) in in_use}
    results = await probe.scan([p for p in ports if p not in busy], timeout_s=timeout_s)
    found = {r.port: r.as_dict() for r in results}
    for port, dev in busy.items():
        found[port] = {"port": port, "ok": False, "error": f"in use by board '{dev}'"}
    return {"results": [found[p] for p in ports]}
