"""Ways to reach a board, each opening a `Link` (`docs/architecture.md` §1).

- serial device paths, `socket://host:port` and `rfc2217://host:port` through serialx,
  COBS-framed (`docs/protocol.md` §3.1);
- `listen://host:port`: boards running the Conduyt TCP transport connect in (§3.2: the
  board is the TCP client), raw packets, stop-and-wait; several boards may share one
  listener and are told apart by the mcu_id in their HELLO_RESP;
- `tcp://host:port`: we connect to a board that accepts TCP connections, with the same
  raw packets and stop-and-wait as `listen://` (`docs/protocol.md` §3.2, Q4, Q24);
- `sim://profile`: a simulated board in-process, over a real socket pair, COBS-framed.

`transport_for_url` picks one of these from a port URL (`docs/library.md` §2).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import urlsplit

import structlog

from conduyt_bridge.device.link import Link
from conduyt_bridge.errors import ConduytDisconnectedError, describe_exception
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.framing import CobsDeframer, RawDeframer
from conduyt_bridge.protocol.hello import parse_hello
from conduyt_bridge.protocol.packet import Packet, encode_packet

log = structlog.stdlib.get_logger("conduyt_bridge.device")

UNKNOWN_MCU_WARN_INTERVAL_S = 60.0
"""Least time between two `TCP board with unknown mcu_id` warnings for one mcu_id: a board
that retries every second must not flood the log."""


class Transport(Protocol):
    """Something that can (re)open a link to one board."""

    @property
    def description(self) -> str:
        """Where the board is, for logs (never contains a secret)."""
        ...

    async def open(self) -> Link:
        """Open the link. Raises OSError, ConduytDisconnectedError or a serialx error on failure."""
        ...


@dataclass
class SerialTransport:
    """A serial port (device path, `socket://`, `rfc2217://`) opened with serialx.

    `SerialTransport("/dev/ttyUSB0", baudrate=115200)` or, as in conduyt-py,
    `SerialTransport(port="/dev/ttyUSB0")`; `port` is a device path or URL (`url` is
    another name for it), `baudrate` in bit/s.
    serialx locks the port exclusively and asserts DTR on open, which USB-CDC boards need
    before they report "connected" (`docs/protocol.md` §3.5). `open()` raises OSError (no
    such device, busy, refused) or a serialx error.
    """

    port: str
    baudrate: int = 115200
    connect_timeout_s: float = 5.0
    """`rfc2217://` only: seconds for the TCP connect plus the RFC 2217 negotiation."""

    @property
    def url(self) -> str:
        """Same as `port`: the device path, `socket://` or `rfc2217://` URL."""
        return self.port

    @property
    def description(self) -> str:
        return self.port

    @property
    def network_address(self) -> tuple[str, int] | None:
        """(host, port) of a `socket://` or `rfc2217://` URL, None for a local device."""
        return network_address(self.url)

    async def open(self) -> Link:
        import serialx

        if self.url.startswith("rfc2217://"):
            from conduyt_bridge.device.rfc2217 import Ser2netRfc2217Transport

            try:
                reader, writer = await serialx.open_serial_connection(
                    self.url,
                    self.baudrate,
                    transport_cls=Ser2netRfc2217Transport,
                    connect_timeout=self.connect_timeout_s,
                )
            except TimeoutError:
                # serialx's own timeout carries no text; say which wait ran out.
                raise TimeoutError(
                    f"timed out after {self.connect_timeout_s:g} s waiting for the "
                    "RFC 2217 negotiation"
                ) from None
        else:
            reader, writer = await serialx.open_serial_connection(self.url, self.baudrate)
        limit_read_size(writer.transport)
        return Link(reader, writer, CobsDeframer(), self.url)


SERIAL_READ_SIZE = 64 * 1024
"""Bytes asked of a serial device per `read` system call (`limit_read_size`)."""


def limit_read_size(transport: object) -> None:
    """Ask a serialx file-descriptor transport for `SERIAL_READ_SIZE` bytes per `read`
    instead of its default 256 KiB (`DescriptorTransport.max_size`).

    A tty never hands over more than its 4 KiB line-discipline buffer per read, but
    `os.read(fd, n)` makes a buffer of n bytes first: measured on a pty under a
    streaming board, a 256 KiB read cost about 25 µs against 3-4 µs for 64 KiB,
    several µs per DS_EVENT (`docs/architecture.md` §6.1). Transports without the
    attribute (sockets) are left alone."""
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = SERIAL_READ_SIZE  # type: ignore[attr-defined]


async def tcp_reachable(host: str, port: int, timeout_s: float) -> bool:
    """True if a TCP connection to host:port is accepted within `timeout_s`; closed at once.

    The cheap check of a network serial server (`docs/network-serial.md`); it sends no
    byte, so the device behind the server sees at most a short open and close.
    """
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def network_address(url: str) -> tuple[str, int] | None:
    """(host, port) of a `socket://host:port` or `rfc2217://host:port` URL, else None."""
    parts = urlsplit(url)
    if parts.scheme not in ("socket", "rfc2217") or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname, port) if port else None


def sim_mcu_id(profile_mcu_id: bytes, device_id: str) -> bytes:
    """The 8-byte mcu_id of the simulated board of device `device_id`: the profile's first
    3 bytes (the vendor part of an ESP32 MAC), then 5 bytes of a BLAKE2b digest of the
    device id, so boards on one profile differ (a clash needs ~10^6 devices)."""
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=5).digest()
    return profile_mcu_id.ljust(8, b"\x00")[:3] + digest


@dataclass
class SimTransport:
    """A simulated board (`sim://<profile>`) served in-process over a socket pair.

    `profile` is a profile name (`"thermostat"`) or its URL (`"sim://thermostat"`). The
    board object survives reconnects, like a real board stays plugged in; tests reach
    it through `board`. Any number of devices may use one profile: with a `device_id`,
    the board's mcu_id is `sim_mcu_id(profile mcu_id, device_id)`, distinct per device.

    Raises KeyError naming the known profiles for an unknown one.
    """

    profile: str
    push_interval_s: float | None = None
    device_id: str | None = None
    board: object = field(init=False)

    def __post_init__(self) -> None:
        from conduyt_bridge.simulator.board import SimulatedBoard
        from conduyt_bridge.simulator.profiles import get_profile, with_push_interval

        self.profile = self.profile.removeprefix("sim://")
        profile = get_profile(self.profile)
        if self.push_interval_s is not None:
            profile = with_push_interval(profile, self.push_interval_s)
        if self.device_id is not None:
            profile = replace(profile, mcu_id=sim_mcu_id(profile.mcu_id, self.device_id))
        self.board = SimulatedBoard(profile)

    @property
    def description(self) -> str:
        return f"sim://{self.profile}"

    async def open(self) -> Link:
        from conduyt_bridge.simulator.board import SimulatedBoard
        from conduyt_bridge.simulator.runner import open_in_process

        assert isinstance(self.board, SimulatedBoard)
        reader, writer, runner = await open_in_process(self.board)
        return Link(reader, writer, CobsDeframer(), self.description, on_close=runner.close)


@dataclass
class TcpTransport:
    """A board that accepts TCP connections: `TcpTransport("tcp://192.168.1.50:5000")` or
    `TcpTransport("192.168.1.50", 5000)`.

    Raw packets with no COBS and strict stop-and-wait, as on `listen://` links
    (`docs/protocol.md` §3.2, Q4); the session drains a stale receive backlog (Q24). The
    firmware's own ConduytTCP only connects out (Q1): boards running it need `listen://`.

    Raises ValueError for an address without a port. `open()` raises OSError (refused,
    unreachable) or TimeoutError after `connect_timeout_s` seconds.
    """

    host: str
    port: int | None = None
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.port is None:
            text = self.host if "://" in self.host else f"tcp://{self.host}"
            parts = urlsplit(text)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme != "tcp" or not parts.hostname or not port:
                raise ValueError(f"expected tcp://HOST:PORT, got {self.host!r}")
            self.host, self.port = parts.hostname, port

    @property
    def description(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    async def open(self) -> Link:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            raise TimeoutError(
                f"timed out after {self.connect_timeout_s:g} s connecting to {self.description}"
            ) from None
        return Link(reader, writer, RawDeframer(), self.description, stop_and_wait=True)


def transport_for_url(url: str, *, baudrate: int = 115200) -> Transport:
    """The transport for a port URL (`docs/library.md` §2):

    `sim://PROFILE` → `SimTransport`; `tcp://HOST:PORT` → `TcpTransport`; a device path
    (`/dev/ttyUSB0`, `COM3`), `socket://HOST:PORT` or `rfc2217://HOST:PORT` →
    `SerialTransport` at `baudrate` bit/s.

    Raises ValueError for another scheme (`listen://` included: it serves boards that
    connect in, which needs a `TcpListener` shared by the boards) or a bad `tcp://` URL,
    KeyError for an unknown simulator profile.
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "sim":
        return SimTransport(url)
    if scheme == "tcp":
        return TcpTransport(url)
    if scheme in ("", "socket", "rfc2217"):
        return SerialTransport(url, baudrate)
    raise ValueError(
        f"unsupported port URL {url!r}: expected a device path, socket://, rfc2217://, "
        "tcp:// or sim://"
    )


class TcpListener:
    """One listening socket for boards with the Conduyt TCP transport (they connect in).

    With one registered board and no mcu_id, every connection goes to it (while it is
    connected, only one that answers HELLO, so a port scan does not cut a live board off).
    Otherwise each connection is asked for HELLO first and handed to the board whose
    configured mcu_id matches (an exact match wins, else the longest configured prefix);
    unmatched connections are closed and logged. A board has one connection: a new one from the
    same board closes the old (half-open after a power cut or a WiFi drop) at once.
    """

    def __init__(self, host: str, port: int, hello_timeout_s: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.hello_timeout_s = hello_timeout_s
        self._queues: dict[str | None, asyncio.Queue[Link]] = {}
        self._server: asyncio.Server | None = None
        self._current: dict[str | None, Link] = {}
        self._closed = False
        # mcu_id -> (monotonic time of its last warning, connections dropped since).
        self._unknown: dict[str, tuple[float, int]] = {}

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from `port` when 0 was asked)."""
        if self._server is None or not self._server.sockets:
            return self.port
        return int(self._server.sockets[0].getsockname()[1])

    def register(self, mcu_id: str | None) -> asyncio.Queue[Link]:
        """Register a board (by configured mcu_id, hex, or None) and get its link queue."""
        key = mcu_id.lower() if mcu_id else None
        return self._queues.setdefault(key, asyncio.Queue(maxsize=1))

    async def start(self) -> None:
        """Start listening (must happen before the boards boot: they connect once, Q1).

        Raises `ConduytDisconnectedError` once `close()` ran: a session reconnecting during the
        shutdown must not open the port again.
        """
        if self._closed:
            raise ConduytDisconnectedError(f"listen://{self.host}:{self.port} is closed")
        if self._server is None:
            self._server = await asyncio.start_server(self._on_client, self.host, self.port)
            log.info("listening for TCP boards", host=self.host, port=self.bound_port)

    async def close(self) -> None:
        """Stop listening for good; links already handed out stay open."""
        self._closed = True
        if self._server is not None:
            # `close()` shuts the listening sockets at once: from here a connecting board is
            # refused. No `wait_closed()`: since Python 3.12 it also waits for every
            # accepted connection, i.e. for the boards' links, which the sessions close
            # only after this (the bridge closes its listeners before the boards).
            self._server.close()
            self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        link = Link(reader, writer, RawDeframer(), f"tcp {peer_text}", stop_and_wait=True)
        if list(self._queues) == [None] and not self._connected(None):
            await self._deliver(None, link)
            return
        try:
            async with asyncio.timeout(self.hello_timeout_s):
                mcu_id = await self._probe_mcu_id(link)
        except (TimeoutError, ConduytDisconnectedError, ValueError) as exc:
            log.warning(
                "TCP board did not identify itself",
                peer=peer_text,
                reason=describe_exception(exc),
            )
            await link.close()
            return
        key = self.match(mcu_id)
        if key is None and None not in self._queues:
            self._warn_unknown(mcu_id, peer_text)
            await link.close()
            return
        await self._deliver(key, link)

    def _connected(self, key: str | None) -> bool:
        """True while the board registered as `key` holds a link that is not closed."""
        current = self._current.get(key)
        return current is not None and not current.closed

    def match(self, mcu_id: str) -> str | None:
        """The registered mcu_id a board reporting `mcu_id` belongs to, or None.

        An exact match wins over a prefix match; among prefixes the longest wins, so the
        answer never depends on the order of the devices in the config.
        """
        mcu_id = mcu_id.lower()
        if mcu_id in self._queues:
            return mcu_id
        prefixes = [key for key in self._queues if key and mcu_id.startswith(key)]
        return max(prefixes, key=len, default=None)

    def _warn_unknown(self, mcu_id: str, peer: str) -> None:
        now = time.monotonic()
        last, dropped = self._unknown.get(mcu_id, (None, 0))
        if last is not None and now - last < UNKNOWN_MCU_WARN_INTERVAL_S:
            self._unknown[mcu_id] = (last, dropped + 1)
            log.debug("TCP board with unknown mcu_id", peer=peer, mcu_id=mcu_id)
            return
        self._unknown[mcu_id] = (now, 0)
        log.warning(
            "TCP board with unknown mcu_id",
            peer=peer,
            mcu_id=mcu_id,
            dropped_since_last_warning=dropped,
        )

    async def _deliver(self, key: str | None, link: Link) -> None:
        queue = self._queues[key]
        # A board that reconnects replaces a link nobody picked up yet, and the link its
        # session still holds: a board has one connection, and an old one that is still
        # open is half-open (the board rebooted or its WiFi dropped). The swap happens
        # before any await, so two connections arriving together cannot both be queued.
        stale = [queue.get_nowait() for _ in range(queue.qsize())]
        old = self._current.get(key)
        self._current[key] = link
        queue.put_nowait(link)
        if old is not None and not old.closed and old not in stale:
            log.info(
                "TCP board connected again, closing its old connection",
                mcu_id=key,
                old=old.description,
                new=link.description,
            )
            stale.append(old)
        for previous in stale:
            await previous.close()

    @staticmethod
    async def _probe_mcu_id(link: Link) -> str:
        await link.send(encode_packet(PacketType.HELLO, 1))
        while True:
            for item in await link.receive():
                if isinstance(item, Packet) and item.type == PacketType.HELLO_RESP:
                    return parse_hello(item.payload).mcu_id_hex


@dataclass
class ListenTransport:
    """A board that connects to one of our `TcpListener`s."""

    listener: TcpListener
    mcu_id: str | None = None
    _queue: asyncio.Queue[Link] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = self.listener.register(self.mcu_id)

    @property
    def description(self) -> str:
        who = f" (mcu_id {self.mcu_id})" if self.mcu_id else ""
        return f"listen://{self.listener.host}:{self.listener.port}{who}"

    async def open(self) -> Link:
        await self.listener.start()
        return await self._queue.get()


def listen_address(port: str) -> tuple[str, int]:
    """(host, port) of a `listen://host:port` URL."""
    parts = urlsplit(port)
    return parts.hostname or "0.0.0.0", int(parts.port or 0)
