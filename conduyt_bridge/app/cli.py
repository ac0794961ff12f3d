"""Command line: `conduyt-bridge --config FILE` (run), `--check`, `--health`, and the
`simulate`, `scan` and `demo` subcommands (`docs/architecture.md` §2)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from conduyt_bridge.app.config import ConfigError, Settings, load_settings, redacted_dump
from conduyt_bridge.app.log import configure_logging
from conduyt_bridge.version import __version__

DEFAULT_CONFIG = "/etc/conduyt-bridge/config.toml"
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="conduyt-bridge",
        description="Bridge Conduyt boards (serial, TCP, simulated) to an MQTT broker.",
    )
    parser.add_argument("--version", action="version", version=f"conduyt-bridge {__version__}")
    parser.add_argument(
        "-c", "--config", default=None, help=f"TOML configuration file (default {DEFAULT_CONFIG})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration, print devices and topics, exit",
    )
    parser.add_argument(
        "--health",
        action="store_true",
        help="query the running bridge's HTTP /healthz; exit 0 when healthy",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override [bridge] log_level",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from conduyt_bridge.simulator import command as sim_command

    sim = sub.add_parser("simulate", help="serve a simulated Conduyt board (pty or TCP)")
    sim_command.add_arguments(sim)

    from conduyt_bridge.app import extras

    extras.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `conduyt-bridge` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "simulate":
        from conduyt_bridge.simulator import command as sim_command

        configure_logging(args.log_level or ("debug" if args.verbose else "warning"))
        return _run_async(sim_command.run(args))
    if args.command is not None:
        from conduyt_bridge.app import extras

        return extras.run_subcommand(args)
    config_path = Path(args.config or DEFAULT_CONFIG)
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        print(f"conduyt-bridge: configuration error\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(check_report(settings))
        return 0
    if args.health:
        from conduyt_bridge.app import extras

        return extras.health_probe(settings)
    level = args.log_level or ("debug" if args.verbose else settings.bridge.log_level)
    configure_logging(level, settings.bridge.log_format)
    return _run_async(run_bridge(settings, config_path))


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    try:
        result = asyncio.run(coro)
    except KeyboardInterrupt:
        return 0
    return int(result or 0)


async def run_bridge(settings: Settings, config_path: Path | None = None) -> int:
    """Run the bridge until SIGINT/SIGTERM; returns 0 after a clean shutdown. SIGHUP
    reloads `config_path` (`docs/requests.md` §6), whose changes the request API saves."""
    from conduyt_bridge.app.daemon import Bridge

    bridge = Bridge(settings, config_path=config_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, bridge.stop)
    loop.add_signal_handler(signal.SIGHUP, bridge.reload_soon)
    await bridge.run()
    return 0


def check_report(settings: Settings) -> str:
    """Human-readable summary for `--check`: resolved settings, devices and their topics.

    Datastream topics of `sim://` boards are listed from the profile; real boards' come
    from their HELLO_RESP at run time.
    """
    from conduyt_bridge.northbound.conduyt.topics import BridgeTopics, datastream_slugs

    topics = BridgeTopics(settings.bridge.base_topic, settings.bridge.id)
    lines = ["configuration OK", "", "settings:"]
    dump = redacted_dump(settings)
    dump.pop("devices", None)
    lines += ["  " + line for line in json.dumps(dump, indent=2, default=str).splitlines()]
    lines += ["", f"bridge topics: {topics.state}, {topics.devices}, {topics.health}", ""]
    lines.append(f"devices ({len(settings.devices)}):")
    for device in settings.devices:
        t = topics.device(device.device_id)
        flags = [
            f
            for f, on in (
                ("read_only", device.read_only),
                ("allow_raw", device.allow_raw),
                ("allow_ota", device.allow_ota),
            )
            if on
        ]
        lines.append(
            f"- {device.device_id}: {device.port} ({device.port_kind}) "
            f"[{', '.join(flags) or 'no flags'}]"
        )
        lines.append(f"    status {t.status}  hello {t.hello}  meta {t.meta}  error {t.error}")
        if device.sim_profile:
            from conduyt_bridge.simulator.profiles import get_profile

            hello = get_profile(device.sim_profile).hello  # the profile was validated
            for slug, ds in datastream_slugs(hello.datastreams).items():
                access = "rw" if ds.writable else "ro"
                lines.append(
                    f"    datastream {ds.name} ({access}): {t.ds(slug)}"
                    + (f"  set: {t.ds_set(slug)}" if ds.writable else "")
                )
        if device.entities:
            from conduyt_bridge.app.config_entities import entity_check_lines
            from conduyt_bridge.simulator.profiles import get_profile

            known = get_profile(device.sim_profile).hello if device.sim_profile else None
            lines += entity_check_lines(device.entity_specs, t, known)
        for sub in device.pins:
            lines.append(
                f"    pin {sub.pin} {sub.mode} every {sub.interval_ms} ms -> {t.pin(sub.pin)}"
            )
        lines.append(f"    commands: {', '.join(t.command_filters())}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
