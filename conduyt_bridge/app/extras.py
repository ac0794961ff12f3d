"""Operational subcommands and probes: `scan`, `demo`, `--health`.

Kept apart from `conduyt_bridge/app/cli.py` so that the CLI stays a thin parser; the heavy
modules (`conduyt_bridge.app.scan`, `conduyt_bridge.app.demo`, the aiohttp server) are
imported only by the command that needs them, and `health_probe` uses only the standard
library, since Docker runs it every few seconds as the HEALTHCHECK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from conduyt_bridge.app.config import Settings

HEALTH_TIMEOUT_S = 3.0
"""How long `--health` waits for `/healthz`, seconds (Docker's default check timeout is 30 s)."""

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def add_subcommands(sub: Any) -> None:
    """Register the operational subcommands (`scan`, `demo`) on the CLI's subparsers."""
    scan = sub.add_parser(
        "scan",
        help="find Conduyt boards on serial ports and print what they offer",
        description=(
            "Probe serial ports (/dev/serial/by-id/*, /dev/ttyUSB*, /dev/ttyACM*, or those "
            "given with --port) with HELLO and print port, firmware, pins, modules and "
            "datastreams of every board that answers. Stop a running bridge first: it "
            "holds its ports exclusively."
        ),
    )
    scan.add_argument(
        "-p",
        "--port",
        action="append",
        metavar="PATH",
        help=(
            "probe this port (repeatable; also socket://HOST:PORT and rfc2217://HOST:PORT); "
            "default: all candidates"
        ),
    )
    scan.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="how long each port gets to answer (default 2; boards that reset on open "
        "need about 1-2 s)",
    )
    scan.add_argument("--baudrate", type=int, default=115200, help="line speed (default 115200)")
    scan.add_argument("--json", action="store_true", help="print JSON instead of a table")

    demo = sub.add_parser(
        "demo",
        help="run simulated boards, the bridge and an MQTT broker in one process",
        description=(
            "Start an in-process MQTT broker (amqtt, from the 'demo' extra; or a local "
            "mosquitto), a bridge with two simulated boards and its status page, and print "
            "the live topic feed."
        ),
    )
    demo.add_argument(
        "--seconds",
        type=_positive_seconds,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    demo.add_argument(
        "--broker",
        choices=["auto", "amqtt", "mosquitto"],
        default="auto",
        help="which broker to start (default auto: amqtt if installed, else mosquitto)",
    )
    demo.add_argument(
        "--mqtt-port",
        type=int,
        default=None,
        metavar="PORT",
        help="loopback port for the broker (default: a free one), to watch it with "
        "another MQTT client",
    )
    demo.add_argument(
        "--raw",
        action="store_true",
        help="also print raw packets ({dev}/evt/{type}), which repeat every board event",
    )
    demo.add_argument(
        "--http",
        default="auto",
        metavar="HOST:PORT",
        help="where to serve the status page (default: a free loopback port; 'off' for none)",
    )


def run_subcommand(args: argparse.Namespace) -> int:
    """Run an operational subcommand; returns the exit code."""
    from conduyt_bridge.app.log import configure_logging

    level = args.log_level or ("debug" if args.verbose else "warning")
    if args.command == "scan":
        from conduyt_bridge.app import scan

        configure_logging(level)
        return asyncio.run(scan.run(args.port, args.timeout, args.baudrate, args.json))
    if args.command == "demo":
        from conduyt_bridge.app import demo

        configure_logging(level)
        http = None if args.http == "off" else args.http
        try:
            return asyncio.run(
                demo.run_demo(args.seconds, args.broker, args.mqtt_port, http, args.raw)
            )
        except KeyboardInterrupt:  # a second Ctrl-C while shutting down
            return EXIT_OK
    print(f"conduyt-bridge: unknown command {args.command!r}")
    return EXIT_USAGE


def health_url(settings: Settings) -> str:
    """The `/healthz` URL of the bridge configured by `settings`.

    A wildcard bind address is reached through loopback (0.0.0.0 → 127.0.0.1, :: → ::1).

    Raises:
        ValueError: `[http] listen` is not set.
    """
    if not settings.http.enabled:
        raise ValueError("[http] listen is not set")
    host, port = settings.http.host, settings.http.port
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def health_probe(settings: Settings, timeout_s: float = HEALTH_TIMEOUT_S) -> int:
    """`--health`: exit code 0 when the running bridge's `/healthz` answers 200, else 1.

    Prints one line either way (Docker keeps it in the container's health log).
    """
    try:
        url = health_url(settings)
    except ValueError:
        print("unhealthy: --health needs [http] listen to be configured")
        return EXIT_UNHEALTHY
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
            body = response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"unhealthy: cannot reach {url}: {reason}")
        return EXIT_UNHEALTHY
    if status == 200:
        print(f"healthy: {url} answered 200")
        return EXIT_OK
    try:
        reason = str(json.loads(body).get("reason") or f"HTTP {status}")
    except (ValueError, AttributeError):
        reason = f"HTTP {status}"
    print(f"unhealthy: {reason}")
    return EXIT_UNHEALTHY
