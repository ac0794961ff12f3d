"""`conduyt-bridge scan`: find Conduyt boards on serial ports and show what they offer.

Each candidate port (`/dev/serial/by-id/*`, `/dev/ttyUSB*`, `/dev/ttyACM*`, or the ports
given with `--port`) is opened with the bridge's own `SerialTransport`, asked for HELLO
(resent every `RESEND_INTERVAL_S`: boards that reset when the port opens miss the first
ones while their bootloader runs), and closed again. All ports are probed concurrently, so
a scan takes about one timeout however many ports there are.

The output is what a new user needs to write the `[[devices]]` entries of a config: a
table (port, firmware, version, pins, modules, datastreams) and a config snippet, or JSON
with `--json`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conduyt_bridge.device.link import Link
from conduyt_bridge.device.transports import SerialTransport
from conduyt_bridge.errors import ConduytDisconnectedError, describe_exception
from conduyt_bridge.northbound.conduyt.topics import datastream_slugs
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.errors import HelloParseError
from conduyt_bridge.protocol.framing import FrameError
from conduyt_bridge.protocol.hello import HelloResp, parse_hello
from conduyt_bridge.protocol.packet import Packet, encode_packet

RESEND_INTERVAL_S = 0.25
"""Seconds between two HELLOs to a port that has not answered yet."""

DEFAULT_TIMEOUT_S = 2.0
"""Seconds a port gets to answer (an Uno's bootloader alone takes about 1 s after reset)."""

CANDIDATE_PATTERNS = ("ttyUSB*", "ttyACM*")
"""Device names (under /dev) of USB serial adapters and USB-CDC boards."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The outcome of probing one port.

    Attributes:
        port: the port as probed (a by-id path when there is one).
        hello: the board's HELLO_RESP, None when the probe failed.
        error: why the probe failed (busy, permission denied, no answer...), else None.
        elapsed_s: time from opening the port to the answer or the failure, seconds.
        device: the device node a by-id symlink points at, else None.
    """

    port: str
    hello: HelloResp | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    device: str | None = None

    @property
    def ok(self) -> bool:
        """True when a Conduyt board answered."""
        return self.hello is not None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for `--json`)."""
        doc: dict[str, Any] = {
            "port": self.port,
            "device": self.device,
            "ok": self.ok,
            "error": self.error,
            "elapsed_s": round(self.elapsed_s, 3),
        }
        hello = self.hello
        if hello is not None:
            doc.update(
                firmware={"name": hello.firmware_name, "version": hello.version_string},
                mcu_id=hello.mcu_id_hex,
                pins=hello.pin_count,
                max_payload=hello.max_payload,
                ota_capable=hello.ota_capable,
                modules=[
                    {"id": m.module_id, "name": m.name, "version": f"{m.version[0]}.{m.version[1]}"}
                    for m in hello.modules
                ],
                datastreams=[
                    {
                        "name": ds.name,
                        "slug": slug,
                        "type": ds.known_type.name.lower() if ds.known_type else int(ds.type),
                        "unit": ds.unit,
                        "writable": ds.writable,
                    }
                    for slug, ds in datastream_slugs(hello.datastreams).items()
                ],
                problems=list(hello.problems),
            )
        return doc


def _natural_key(path: Path) -> tuple[str, int]:
    # ttyUSB2 before ttyUSB10.
    match = re.match(r"(.*?)(\d*)$", path.name)
    assert match is not None
    return match.group(1), int(match.group(2) or -1)


def candidate_ports(dev_dir: Path = Path("/dev")) -> list[str]:
    """Serial ports worth probing: stable by-id links first, then bare device nodes.

    A device node that a by-id link points at is listed once, under the link: that is the
    name to put in a config, since ttyUSB numbers change with the plugging order.
    """
    ports: list[str] = []
    seen: set[str] = set()
    by_id = dev_dir / "serial" / "by-id"
    links = sorted(by_id.iterdir()) if by_id.is_dir() else []
    for link in links:
        target = os.path.realpath(link)
        if target not in seen:
            seen.add(target)
            ports.append(str(link))
    for pattern in CANDIDATE_PATTERNS:
        for node in sorted(dev_dir.glob(pattern), key=_natural_key):
            target = os.path.realpath(node)
            if target not in seen:
                seen.add(target)
                ports.append(str(node))
    return ports


def _device_node(port: str) -> str | None:
    """The device node behind a symlinked port path (by-id), else None."""
    if not port.startswith("/"):
        return None  # a socket:// or rfc2217:// URL
    real = os.path.realpath(port)
    return real if real != port else None


def _open_failure(exc: BaseException) -> str:
    """A short, actionable reason for a port that could not be opened."""
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return "permission denied (add your user to the 'dialout' group, then log in again)"
    if getattr(exc, "errno", None) == errno.EBUSY:
        return "busy: another program has the port open (a running conduyt-bridge?)"
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, OSError) and exc.strerror and not exc.errno:
        return f"cannot open: {exc.strerror}"
    return f"cannot open: {describe_exception(exc)}"


async def _ask_hello(link: Link, deadline: float) -> Packet | str:
    """Send HELLO until a HELLO_RESP arrives or `deadline` (monotonic) passes.

    Returns the HELLO_RESP packet, or the reason there is none.
    """
    seq = 0
    frame_errors = 0
    other_packets = 0
    while (remaining := deadline - time.monotonic()) > 0:
        seq = seq % 255 + 1
        await link.send(encode_packet(PacketType.HELLO, seq))
        resend_at = time.monotonic() + min(RESEND_INTERVAL_S, remaining)
        while (wait := resend_at - time.monotonic()) > 0:
            try:
                items = await asyncio.wait_for(link.receive(), wait)
            except TimeoutError:
                break
            for item in items:
                if isinstance(item, FrameError):
                    frame_errors += 1
                elif item.type == PacketType.HELLO_RESP:
                    # Any of our HELLOs may be the one answered: a board that was still
                    # booting answers a later one, a slow one an earlier one.
                    return item
                else:
                    other_packets += 1
    if other_packets:
        return f"no HELLO_RESP, but {other_packets} other Conduyt packets (firmware busy?)"
    if frame_errors or link.bytes_in:
        return (
            f"no answer: {link.bytes_in} bytes of non-Conduyt data "
            "(other firmware, or a baud rate other than the board's?)"
        )
    return "no answer"


RFC2217_BACKSTOP_S = 1.0
"""How much longer than its own connect timeout an `rfc2217://` open may take before the
probe gives up on it, seconds."""


async def probe(
    port: str, timeout_s: float = DEFAULT_TIMEOUT_S, baudrate: int = 115200
) -> ScanResult:
    """Open `port`, ask for HELLO, close it; never raises for a port problem.

    Args:
        port: a serial device path (or a `socket://` / `rfc2217://` URL).
        timeout_s: seconds for the whole probe: opening the port (for `rfc2217://` the
            RFC 2217 negotiation gets as long) and the board's answer.
        baudrate: line speed, bits per second.
    """
    device = _device_node(port)
    started = time.monotonic()
    transport = SerialTransport(port, baudrate, connect_timeout_s=timeout_s)
    # An `rfc2217://` open has its own timeout, which says what it waited for: it must
    # fire first, so the backstop waits a full second longer (a quarter second lost the
    # race on a loaded machine and the reason lost its "RFC 2217 negotiation").
    grace_s = RFC2217_BACKSTOP_S if port.startswith("rfc2217://") else 0.0
    opening = asyncio.timeout(timeout_s + grace_s)

    def result(hello: HelloResp | None = None, error: str | None = None) -> ScanResult:
        return ScanResult(port, hello, error, time.monotonic() - started, device)

    try:
        async with opening:
            link = await transport.open()
    except TimeoutError as exc:
        reason = f"timed out after {timeout_s:g} s" if opening.expired() else None
        return result(error=f"cannot open: {reason or describe_exception(exc)}")
    except Exception as exc:  # serialx raises OSError subclasses and its own errors
        return result(error=_open_failure(exc))
    try:
        answer = await _ask_hello(link, started + timeout_s)
    except ConduytDisconnectedError as exc:
        return result(error=f"port closed while probing: {exc}")
    finally:
        await link.close()
    if isinstance(answer, str):
        return result(
            error=f"{answer} (waited {timeout_s:g} s)" if answer == "no answer" else answer
        )
    try:
        hello = parse_hello(answer.payload)
    except HelloParseError as exc:
        return result(error=f"unusable HELLO_RESP: {exc}")
    return result(hello=hello)


async def scan(
    ports: Sequence[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    baudrate: int = 115200,
) -> list[ScanResult]:
    """Probe `ports` (default: `candidate_ports()`) concurrently, results in port order.

    Args:
        ports: ports to probe; None = every candidate serial port of this machine.
        timeout_s: seconds each port gets to answer.
        baudrate: line speed, bits per second.
    """
    targets = list(dict.fromkeys(candidate_ports() if ports is None else ports))
    return list(await asyncio.gather(*(probe(p, timeout_s, baudrate) for p in targets)))


# ---- output ------------------------------------------------------------------------------------

_HEADERS = ("PORT", "FIRMWARE", "VERSION", "PINS", "MODULES", "DATASTREAMS")


def _datastream_summary(hello: HelloResp) -> str:
    parts = []
    for ds in hello.datastreams:
        flags = [ds.unit] if ds.unit else []
        if ds.writable:
            flags.append("rw")
        parts.append(f"{ds.name} ({', '.join(flags)})" if flags else ds.name)
    return ", ".join(parts) or "-"


def _row(result: ScanResult) -> tuple[str, ...]:
    hello = result.hello
    assert hello is not None
    modules = ", ".join(m.name for m in hello.modules) or "-"
    return (
        result.port,
        hello.firmware_name or "?",
        hello.version_string,
        str(hello.pin_count),
        modules,
        _datastream_summary(hello),
    )


def _device_id(hello: HelloResp, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", hello.firmware_name).strip("-_")[:56] or "board"
    if not base[0].isalnum():
        base = f"board-{base}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def format_table(results: Sequence[ScanResult], elapsed_s: float | None = None) -> str:
    """The human-readable report: aligned table, failures, summary and a config snippet."""
    if not results:
        return (
            "no boards found (no serial ports: looked for /dev/serial/by-id/*, "
            "/dev/ttyUSB*, /dev/ttyACM*; use --port PATH to probe another one)"
        )
    rows = [_row(r) for r in results if r.ok]
    failures = [r for r in results if not r.ok]
    widths = [len(h) for h in _HEADERS]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    # Failures share the PORT column so that ports line up across both kinds of row.
    widths[0] = max([widths[0], *(len(r.port) for r in failures)])
    numeric = {3}

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            last = i == len(cells) - 1
            if i in numeric:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if last else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [line(_HEADERS)]
    lines += [line(row) for row in rows]
    lines += [f"{r.port.ljust(widths[0])}  {r.error}" for r in failures]
    took = f" in {elapsed_s:.1f} s" if elapsed_s is not None else ""
    found = len(rows)
    lines.append("")
    summary = f"{len(results)} port{'s' if len(results) != 1 else ''} probed{took}: "
    lines.append(
        summary
        + (f"{found} board{'s' if found != 1 else ''} found" if found else "no boards found")
    )
    if found:
        lines += ["", "For your config.toml:", ""]
        taken: set[str] = set()
        for result in results:
            if result.hello is None:
                continue
            lines += [
                "[[devices]]",
                f'id = "{_device_id(result.hello, taken)}"',
                f"port = {json.dumps(result.port)}",
                "",
            ]
        lines.pop()
    return "\n".join(lines)


def format_json(results: Sequence[ScanResult]) -> str:
    """The results as a JSON array (one object per port, see `ScanResult.as_dict`)."""
    return json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False)


async def run(ports: Sequence[str] | None, timeout_s: float, baudrate: int, as_json: bool) -> int:
    """The `scan` subcommand: probe, print, return the exit code (0: the scan ran)."""
    started = time.monotonic()
    results = await scan(ports, timeout_s, baudrate)
    elapsed = time.monotonic() - started
    print(format_json(results) if as_json else format_table(results, elapsed))
    return 0
