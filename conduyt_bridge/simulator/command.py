"""`conduyt-bridge simulate PROFILE [--pty] [--link PATH] [--tcp HOST:PORT] ...`.

`--tcp-listen HOST:PORT` serves the board on a listening socket instead (raw packets, one
host at a time; port 0 picks a free port): what a host's `tcp://HOST:PORT` connects to.

`--rate HZ` runs the sketch's loop HZ times per second and sends each millisecond's output
in one write, as a fast native-USB board's bytes reach the host in bulk transfers: with
the `firehose` profile, a load of exactly HZ DS_EVENTs per second (`bench/hotpath.py`).

`--mcu-id HEX` gives the board another mcu_id (to tell several boards on one `listen://`
port apart), and `--tcp-backlog` gives a TCP board the firmware's one-packet-per-poll
receive buffer (`docs/protocol.md` Q24; stop the process with SIGSTOP past the bridge's
keepalive window, then SIGCONT, to reproduce a stale backlog).

Serves a simulated board until SIGINT/SIGTERM. With `--pty` (the default) exactly one line
goes to stdout: the pty path, followed by the symlink path when `--link` is given, so a
script can read it and open the port; with `--tcp-listen`, the one line is the bound
`HOST:PORT`. Diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys

from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import PROFILES, get_profile, with_push_interval
from conduyt_bridge.simulator.ptyboard import PtyBoard
from conduyt_bridge.simulator.runner import run_tcp_client
from conduyt_bridge.simulator.tcp_server import TcpBoardServer

EXIT_OK = 0
EXIT_CONNECT = 1
"""Exit code when `--tcp` cannot connect (or, with `--once`, the first connect fails)."""
EXIT_USAGE = 2
"""Exit code for a bad profile name or bad option values, like argparse's."""
MAX_RATE_HZ = 1_000_000
"""Largest `--rate`: a million loop iterations per second is beyond any board."""


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (PORT 0 = any), got {text!r}")
    return host.strip("[]"), int(port)


def _mcu_id(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected hex digits, got {text!r}") from None
    if not 1 <= len(value) <= 8:
        raise argparse.ArgumentTypeError(f"mcu_id is 1 to 8 bytes, got {len(value)}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"push interval must be >= 0, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected loop iterations per second, got {text!r}"
        ) from None
    if not 0 < value <= MAX_RATE_HZ:
        raise argparse.ArgumentTypeError(f"rate must be > 0 and <= {MAX_RATE_HZ:g}, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `simulate` arguments to `parser`."""
    parser.add_argument(
        "profile",
        metavar="PROFILE",
        help=f"board profile: {', '.join(sorted(PROFILES))}",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--pty",
        action="store_true",
        help="serve on a new pseudo-terminal and print its path (the default)",
    )
    where.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        type=_host_port,
        help="connect to a listening host like the ConduytTCP transport (raw packets)",
    )
    where.add_argument(
        "--tcp-listen",
        metavar="HOST:PORT",
        type=_listen_address,
        help="listen for a host (raw packets, one host at a time) and print the bound "
        "HOST:PORT; a host connects with tcp://HOST:PORT",
    )
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="with --pty: keep a symlink at PATH pointing at the pty (like /dev/serial/by-id)",
    )
    parser.add_argument(
        "--push-interval",
        metavar="SECONDS",
        type=_seconds,
        help="push every periodic datastream this often (0 = as fast as possible)",
    )
    parser.add_argument(
        "--rate",
        metavar="HZ",
        type=_rate,
        help="run the sketch's loop this many times per second, sending each millisecond's "
        "output in one write like a native-USB board (firehose: HZ events/s)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="with --tcp: do not reconnect after the connection drops (real firmware, Q1)",
    )
    parser.add_argument("--seed", type=int, help="random seed, for a reproducible board")
    parser.add_argument(
        "--mcu-id",
        metavar="HEX",
        type=_mcu_id,
        help="mcu_id in HELLO_RESP instead of the profile's (1 to 8 bytes as hex)",
    )
    parser.add_argument(
        "--tcp-backlog",
        action="store_true",
        help="with --tcp or --tcp-listen: decode one packet per poll and keep the buffer across "
        "reconnects, like the firmware's TCP transport (quirk Q24)",
    )


async def run(args: argparse.Namespace) -> int:
    """Serve the board described by `args` until SIGINT/SIGTERM; return the exit code."""
    try:
        profile = get_profile(args.profile)
    except KeyError as exc:
        print(f"conduyt-bridge simulate: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    if args.push_interval is not None:
        profile = with_push_interval(profile, args.push_interval)
    if args.mcu_id is not None:
        profile = dataclasses.replace(profile, mcu_id=args.mcu_id)
    tcp_listen = args.tcp_listen
    if (args.tcp is not None or tcp_listen is not None) and args.link is not None:
        print("conduyt-bridge simulate: --link needs --pty", file=sys.stderr)
        return EXIT_USAGE
    if args.tcp is None and tcp_listen is None and args.tcp_backlog:
        print("conduyt-bridge simulate: --tcp-backlog needs --tcp or --tcp-listen", file=sys.stderr)
        return EXIT_USAGE

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.tcp is not None:
            host, port = args.tcp
            board = SimulatedBoard(profile, framing="raw", seed=args.seed)
            board.faults.tcp_backlog = args.tcp_backlog
            return await _serve_tcp(
                board, host, port, retry=not args.once, rate=args.rate, stop=stop
            )
        if tcp_listen is not None:
            board = SimulatedBoard(profile, framing="raw", seed=args.seed)
            board.faults.tcp_backlog = args.tcp_backlog
            async with TcpBoardServer(board, *tcp_listen, loop_rate_hz=args.rate) as server:
                bound_host, bound_port = server.address
                print(f"{bound_host}:{bound_port}", flush=True)
                await stop.wait()
            return EXIT_OK
        board = SimulatedBoard(profile, framing="cobs", seed=args.seed)
        async with PtyBoard(board, link=args.link, loop_rate_hz=args.rate) as served:
            line = served.path if served.link is None else f"{served.path} {served.link}"
            print(line, flush=True)
            await stop.wait()
        return EXIT_OK
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _serve_tcp(
    board: SimulatedBoard,
    host: str,
    port: int,
    *,
    retry: bool,
    rate: float | None,
    stop: asyncio.Event,
) -> int:
    serve = asyncio.create_task(run_tcp_client(board, host, port, retry=retry, loop_rate_hz=rate))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serve, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        serve.cancel()
        raise
    finally:
        stopper.cancel()
    if not serve.done():
        serve.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serve
        return EXIT_OK
    exc = serve.exception()
    if isinstance(exc, OSError):
        print(f"conduyt-bridge simulate: {host}:{port}: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    if exc is not None:
        raise exc
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (`python -m conduyt_bridge.simulator PROFILE ...`)."""
    parser = argparse.ArgumentParser(
        prog="python -m conduyt_bridge.simulator", description="Serve a simulated Conduyt board."
    )
    add_arguments(parser)
    return asyncio.run(run(parser.parse_args(argv)))
