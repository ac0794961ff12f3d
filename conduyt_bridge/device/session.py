"""DeviceSession: one board's link, handshake, sequence numbers, requests and events.

Behaviour per `docs/architecture.md` §4 and `docs/protocol.md` §1.6, §3.5, §7:
HELLO (retried with backoff, auto-reset boards reboot when the port opens), RESET and
STREAM_STOP to clear a previous host's leftovers, then the handshake hooks (pin
subscriptions, replay of retained writable datastreams). Sequence numbers 1..255, never
0 (events and CRC-NAKs carry 0) and never one still in flight. A NAK CRC_MISMATCH with
seq 0 makes the oldest pending command be sent again. A keepalive PING declares the link
lost after N unanswered tries. The link is reopened forever with capped exponential
backoff. For a network serial server (`socket://`, `rfc2217://`) the backoff is watched by
a bare TCP connect probe every `NETWORK_PROBE_INTERVAL_S` while the server is unreachable
(the open was refused), and the first probe that connects ends the wait: a server back
after a long outage is noticed within seconds, not at the end of a backoff grown to
`reconnect_max_s`. A wait after an open the server took (the board did not answer, or the
link was lost) is a plain sleep with no probe, so a board behind a working server is not
reset by probes (`docs/network-serial.md`).

Reboots behind an open port (reset button, watchdog, brown-out) leave no protocol trace:
the firmware sends nothing on boot and keeps no state to ask for. The evidence used, named
in the "board may have rebooted" log line, is: a boot-ROM banner line (ESP32/ESP8266), at
least `BOOT_NOISE_BYTES` of non-text noise in one read (a bootloader or a boot ROM at
another baud rate), or a board that answers again after unanswered keepalive PINGs. Text
a sketch prints between frames is passed to the observer and is never such evidence
(`docs/serial-text.md`).

A board on the Conduyt TCP transport decodes at most one packet per poll, only when new
bytes arrive, and keeps its receive buffer across reconnects (`docs/protocol.md` Q24):
after a stall, requests queue up in it and every later request is answered with the
reply to an older one. When a HELLO goes unanswered on a raw link while answers with
older sequence numbers than the one in flight arrive (the evidence, named in the log
line), the handshake drains that backlog before it retries: it sends a PING one byte per
write, `DRAIN_BYTE_GAP_S` apart, so each byte is a poll of its own and decodes one stale
packet, and discards the stale answers until the PONG carries that PING's sequence
number. PINGs sent whole, back to back, cannot drain it: each adds a packet for the one
it decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import structlog

from conduyt_bridge.app.config import DeviceConfig
from conduyt_bridge.device.capabilities import check_payload_size
from conduyt_bridge.device.link import Link
from conduyt_bridge.device.serial_text import boot_banner
from conduyt_bridge.device.transports import SerialTransport, Transport, tcp_reachable
from conduyt_bridge.errors import (
    ConduytCapabilityError,
    ConduytDisconnectedError,
    ConduytError,
    ConduytNAKError,
    ConduytTimeoutError,
    describe_exception,
)
from conduyt_bridge.protocol.commands import parse_nak
from conduyt_bridge.protocol.constants import (
    RESPONSE_TYPES,
    ErrorCode,
    PacketType,
    error_name,
    type_name,
)
from conduyt_bridge.protocol.errors import HelloParseError
from conduyt_bridge.protocol.framing import FrameError, TextLine
from conduyt_bridge.protocol.hello import HelloResp, parse_hello
from conduyt_bridge.protocol.packet import Packet, encode_packet

REBOOT_CHECK_INTERVAL_S = 10.0
"""Least time between two re-runs of the handshake routine on a suspected reboot."""

BOOT_NOISE_BYTES = 16
"""Bytes of non-protocol, non-text noise in one read that suggest a reset (bootloader
output, or a boot ROM printing at another baud rate). Text lines never count, nor do the
few bad bytes of a mostly printable line or ANSI colour codes (`docs/serial-text.md`)."""

HELLO_ATTEMPTS = 6
"""HELLO tries per opened link before it is closed and reopened (§3.5: boards that reset
on open need a few seconds)."""

DRAIN_PINGS = 4
"""Byte-by-byte PINGs the handshake sends at most to drain a TCP board's backlog (each
decodes up to seven stale packets)."""

DRAIN_BYTE_GAP_S = 0.03
"""Pause between two bytes of a draining PING, so the board polls each on its own."""

UNMATCHED_KEPT = 16
"""Answers with an unknown sequence number remembered as evidence of a stale backlog."""

LATENCY_WINDOW = 1024
"""Command latencies kept for percentiles."""

NETWORK_PROBE_INTERVAL_S = 2.0
"""Seconds between two TCP connect probes of an unreachable network serial server."""

NETWORK_PROBE_TIMEOUT_S = 1.0
"""Seconds one TCP connect probe may take."""


class SessionState(StrEnum):
    """Where a board's session stands."""

    CONNECTING = "connecting"
    ONLINE = "online"
    OFFLINE = "offline"


class SessionObserver(Protocol):
    """What the bridge is told about a board (all calls happen on the event loop)."""

    async def on_online(self, session: DeviceSession, hello: HelloResp, changed: bool) -> None:
        """Handshake done; `changed` is True if another board/firmware now sits on the port."""
        ...

    async def on_offline(self, session: DeviceSession, reason: str) -> None:
        """The link was lost (it is being reopened)."""
        ...

    def on_event(self, session: DeviceSession, packet: Packet) -> None:
        """An event (DS_EVENT, PIN_EVENT, MOD_EVENT, STREAM_DATA, LOG, FATAL, or a reply
        nobody waits for). Must not block."""
        ...

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        """A text line the board printed between frames (e.g. `Serial.println`). Must not
        block."""
        ...


@dataclass
class SessionStats:
    """Counters of one board since the bridge started."""

    packets_in: int = 0
    packets_out: int = 0
    frame_errors: int = 0
    text_lines: int = 0
    reboots_suspected: int = 0
    crc_naks: int = 0
    retransmits: int = 0
    naks: int = 0
    timeouts: int = 0
    reconnects: int = 0
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    latency_observers: list[Callable[[float], None]] = field(default_factory=list)
    """Called with every command latency, seconds (e.g. a Prometheus histogram: the
    window above cannot give cumulative buckets)."""

    def record_latency(self, seconds: float) -> None:
        """Note one command's latency (seconds) in the window and tell the observers."""
        self.latencies_s.append(seconds)
        for observer in self.latency_observers:
            observer(seconds)

    def latency_percentile(self, q: float) -> float | None:
        """The q-quantile (0..1) of recent command latencies in seconds, None if none yet."""
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class _Pending:
    future: asyncio.Future[Packet]
    wire: bytes
    request: str
    sent_at: float
    retransmitted: bool = False


HandshakeHook = Callable[["DeviceSession"], Awaitable[None]]


class DeviceSession:
    """Owns one board: its transport, sequence-number space and pending-request table."""

    def __init__(
        self,
        config: DeviceConfig,
        transport: Transport,
        observer: SessionObserver,
        handshake_hooks: Sequence[HandshakeHook] = (),
    ) -> None:
        self.config = config
        self.device_id = config.device_id
        self.transport = transport
        self.observer = observer
        self.handshake_hooks = list(handshake_hooks)
        self.state = SessionState.CONNECTING
        self.hello: HelloResp | None = None
        self.hello_packet: bytes | None = None
        self.stats = SessionStats()
        self.last_error: str | None = None
        self.board_changed = False
        """True during/after a handshake that found another board or firmware on the port."""
        self.online_since: float | None = None
        self._link: Link | None = None
        self._pending: dict[int, _Pending] = {}
        self._seq = 0
        self._window = asyncio.Semaphore(1)
        self._last_rx = 0.0
        self._identity: tuple[object, ...] | None = None
        self._last_rerun = 0.0
        self._background: set[asyncio.Task[None]] = set()
        self._unmatched: deque[tuple[int, int]] = deque(maxlen=UNMATCHED_KEPT)
        self.log = structlog.stdlib.get_logger("conduyt_bridge.device").bind(device=self.device_id)

    # ---- public API -------------------------------------------------------------------

    @property
    def online(self) -> bool:
        """True between a completed handshake and the loss of the link."""
        return self.state is SessionState.ONLINE

    @property
    def max_command_payload(self) -> int:
        """Largest command payload the board can receive, bytes (`docs/protocol.md` §1.5).

        On COBS links the encoded frame must fit the board's M + 8 byte buffer, so the safe
        rule P <= M - 4 applies; raw links take M.
        """
        if self.hello is None or self.hello.max_payload == 0:
            return 0xFFFF
        m = self.hello.max_payload
        stop_and_wait = self._link is not None and self._link.stop_and_wait
        return m if stop_and_wait else max(0, m - 4)

    @property
    def handshake_budget_s(self) -> float:
        """Longest a handshake may take, seconds: every HELLO try with its pause, then the
        routine's commands (used to bound how long commands wait for a board that is
        connecting)."""
        cfg = self.config
        pauses = sum(min(0.1 * float(2**a), 2.0) for a in range(HELLO_ATTEMPTS))
        commands = (2 + len(cfg.pins) + 4) * cfg.command_timeout_ms / 1000
        return HELLO_ATTEMPTS * cfg.hello_timeout_ms / 1000 + pauses + commands

    async def request(
        self, type_: int, payload: bytes = b"", timeout_s: float | None = None
    ) -> Packet:
        """Send a command and wait for its reply (matched by sequence number).

        Returns the reply packet (ACK, PONG, HELLO_RESP, PIN_READ_RESP, MOD_RESP, ...).
        Raises ConduytDisconnectedError (no link, or lost while waiting), ConduytTimeoutError,
        ConduytNAKError (the board answered NAK), ConduytCapabilityError (payload over the board's
        limit).
        """
        link = self._link
        if link is None or link.closed:
            raise ConduytDisconnectedError(f"{self.device_id} is offline")
        name = type_name(type_)
        check_payload_size(name, len(payload), self.max_command_payload)
        timeout = timeout_s if timeout_s is not None else self.config.command_timeout_ms / 1000
        async with self._window:
            if link is not self._link or link.closed:
                raise ConduytDisconnectedError(f"{self.device_id} went offline")
            seq = self._next_seq()
            wire = encode_packet(type_, seq, payload)
            future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
            started = time.monotonic()
            self._pending[seq] = _Pending(future, wire, name, started)
            try:
                await link.send(wire)
                self.stats.packets_out += 1
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the reply (gh-86296).
                async with asyncio.timeout(timeout):
                    reply = await future
            except TimeoutError:
                self.stats.timeouts += 1
                raise ConduytTimeoutError(name, timeout) from None
            finally:
                self._pending.pop(seq, None)
        if reply.type == PacketType.NAK:
            self.stats.naks += 1
            code = parse_nak(reply.payload)
            raise ConduytNAKError(code, error_name(code), name)
        self.stats.record_latency(time.monotonic() - started)
        return reply

    async def run(self) -> None:
        """Keep the board connected forever (until cancelled)."""
        cfg = self.config
        backoff = cfg.reconnect_min_s
        first = True
        while True:
            if not first:
                self.stats.reconnects += 1
            first = False
            try:
                link = await self.transport.open()
            except Exception as exc:  # any open failure: unplugged, busy, refused, bad URL
                self.state = SessionState.OFFLINE
                error = describe_exception(exc)
                self._note_error(f"cannot open {self.transport.description}: {error}")
                self.log.warning(
                    "cannot open board",
                    port=self.transport.description,
                    error=error,
                    retry_in_s=backoff,
                )
                refused = isinstance(exc, OSError) and not isinstance(exc, TimeoutError)
                await self._wait_before_reopen(backoff, server_down=refused)
                backoff = min(backoff * 2, cfg.reconnect_max_s)
                continue
            reason = await self._serve(link)
            if self.online_since is not None and time.monotonic() - self.online_since > 10:
                backoff = cfg.reconnect_min_s
            was_online = self.state is SessionState.ONLINE
            self.state = SessionState.OFFLINE
            self.online_since = None
            self._note_error(reason)
            if was_online:
                self.log.warning("board offline", reason=reason)
                with contextlib.suppress(Exception):
                    await self.observer.on_offline(self, reason)
            else:
                self.log.info("handshake failed", reason=reason, retry_in_s=backoff)
            await self._wait_before_reopen(backoff, server_down=False)
            backoff = min(backoff * 2, cfg.reconnect_max_s)

    # ---- internals ----------------------------------------------------------------------

    async def _wait_before_reopen(self, delay_s: float, *, server_down: bool) -> None:
        """Sleep `delay_s` before reopening, or less if a network server comes back.

        `server_down`: the open just failed because the server did not take the
        connection. Only then is the server probed, and only for `socket://` and
        `rfc2217://` ports (a local device has no cheap reachability test). A server that
        took the connection is not probed at all: with raw TCP each probe makes the server
        open (and may reset) the device behind it.
        """
        address = (
            self.transport.network_address if isinstance(self.transport, SerialTransport) else None
        )
        if address is None or not server_down:
            await asyncio.sleep(delay_s)
            return
        deadline = time.monotonic() + delay_s
        while (remaining := deadline - time.monotonic()) > 0:
            if remaining <= NETWORK_PROBE_INTERVAL_S:
                await asyncio.sleep(remaining)
                return
            await asyncio.sleep(NETWORK_PROBE_INTERVAL_S)
            if await tcp_reachable(*address, timeout_s=NETWORK_PROBE_TIMEOUT_S):
                self.log.info(
                    "network serial server reachable again",
                    port=self.transport.description,
                    backoff_cut_s=round(deadline - time.monotonic(), 1),
                )
                return

    def _note_error(self, message: str) -> None:
        self.last_error = message

    def _next_seq(self) -> int:
        for _ in range(255):
            self._seq = self._seq % 255 + 1
            if self._seq not in self._pending:
                return self._seq
        raise ConduytDisconnectedError("no free sequence number: 255 commands in flight")

    async def _serve(self, link: Link) -> str:
        """Run one opened link until it is lost; returns the reason."""
        self._link = link
        self._window = asyncio.Semaphore(1 if link.stop_and_wait else 4)
        self.state = SessionState.CONNECTING
        self._last_rx = time.monotonic()
        reader = asyncio.create_task(self._read_loop(link), name=f"read-{self.device_id}")
        keepalive: asyncio.Task[None] | None = None
        try:
            await self._handshake(link, reader)
            keepalive = asyncio.create_task(self._keepalive(link), name=f"ka-{self.device_id}")
            done, _ = await asyncio.wait({reader, keepalive}, return_when=asyncio.FIRST_COMPLETED)
            exc = next(iter(done)).exception()
            return describe_exception(exc) if exc else "link closed"
        except ConduytError as exc:
            return str(exc)
        except Exception as exc:  # a bug in a hook or observer: drop this link, reconnect
            self.log.exception("board session failed")
            return f"internal error: {exc!r}"
        finally:
            children = [t for t in (reader, keepalive) if t is not None]
            for task in children:
                task.cancel()
            self._link = None
            self._fail_pending(ConduytDisconnectedError(f"{self.device_id} went offline"))
            try:
                # asyncio.wait (not suppress(...) around await) so that a cancellation
                # of this session itself still propagates: swallowing it here once kept
                # a session reconnecting after shutdown.
                await asyncio.wait(children)
                for task in children:
                    if not task.cancelled():
                        task.exception()  # retrieved: it was reported as the reason
            finally:
                await link.close()

    async def _handshake(self, link: Link, reader: asyncio.Task[None]) -> None:
        hello_packet: Packet | None = None
        timeout = self.config.hello_timeout_ms / 1000
        for attempt in range(HELLO_ATTEMPTS):
            if reader.done():
                raise ConduytDisconnectedError(f"link lost during handshake: {reader.exception()}")
            self._unmatched.clear()
            try:
                hello_packet = await self.request(PacketType.HELLO, b"", timeout)
                break
            except ConduytTimeoutError:
                stale = stale_answers(self._seq, list(self._unmatched))
                if stale and link.stop_and_wait and await self._drain_backlog(link, stale):
                    continue
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        if hello_packet is None or hello_packet.type != PacketType.HELLO_RESP:
            raise ConduytDisconnectedError(f"no HELLO_RESP after {HELLO_ATTEMPTS} attempts")
        try:
            hello = parse_hello(hello_packet.payload)
        except HelloParseError as exc:
            raise ConduytDisconnectedError(f"unusable HELLO_RESP: {exc}") from exc
        if hello.problems:
            self.log.warning("HELLO_RESP is truncated or corrupted", problems=list(hello.problems))
        self.hello = hello
        self.hello_packet = hello_packet.encode()
        changed = self._identity is not None and self._identity != hello.identity()
        self._identity = hello.identity()
        self.board_changed = changed
        await self._routine()
        self.state = SessionState.ONLINE
        self.online_since = time.monotonic()
        self.log.info(
            "board online",
            firmware=hello.firmware_name,
            version=hello.version_string,
            mcu_id=hello.mcu_id_hex,
            pins=hello.pin_count,
            datastreams=len(hello.datastreams),
            changed=changed,
        )
        await self.observer.on_online(self, hello, changed)

    async def _drain_backlog(self, link: Link, evidence: str) -> bool:
        """Empty a TCP board's stale receive backlog (Q24); True once a PONG matched."""
        self.log.warning(
            "board answers older requests: draining its receive backlog", evidence=evidence
        )
        timeout = self.config.command_timeout_ms / 1000
        loop = asyncio.get_running_loop()
        for _ in range(DRAIN_PINGS):
            async with self._window:
                seq = self._next_seq()
                wire = encode_packet(PacketType.PING, seq, b"")
                future: asyncio.Future[Packet] = loop.create_future()
                self._pending[seq] = _Pending(future, wire, "PING", time.monotonic())
                try:
                    for i in range(len(wire)):
                        await link.send(wire[i : i + 1])
                        await asyncio.sleep(DRAIN_BYTE_GAP_S)
                    self.stats.packets_out += 1
                    async with asyncio.timeout(timeout):
                        await future
                except TimeoutError:
                    continue
                finally:
                    self._pending.pop(seq, None)
            self.log.info("receive backlog drained", ping_seq=seq)
            return True
        return False

    async def _routine(self) -> None:
        """The post-HELLO routine: clear what a previous host (or the board's previous
        life) left behind — subscription slots leak (Q6), RESET does not stop streams
        (Q16) — then the hooks: pin subscriptions, replay of retained values."""
        await self.request(PacketType.RESET)
        await self.request(PacketType.STREAM_STOP)
        for hook in self.handshake_hooks:
            try:
                await hook(self)
            except (ConduytNAKError, ConduytTimeoutError, ConduytCapabilityError) as exc:
                self.log.warning("handshake step failed", error=describe_exception(exc))

    def suspect_reboot(self, why: str) -> None:
        """The board may have rebooted with its port still open (reset button, watchdog,
        OTA): it then forgot pin modes, subscriptions and written values, and nothing on
        the wire says so. Run the routine again (it is idempotent); at most once per
        REBOOT_CHECK_INTERVAL_S."""
        now = time.monotonic()
        if not self.online or now - self._last_rerun < REBOOT_CHECK_INTERVAL_S:
            return
        self._last_rerun = now
        self.stats.reboots_suspected += 1
        self.log.info("board may have rebooted: re-running the handshake routine", why=why)

        async def rerun() -> None:
            try:
                await self._routine()
            except ConduytError as exc:
                self.log.warning(
                    "re-running the handshake routine failed", error=describe_exception(exc)
                )

        task = asyncio.get_running_loop().create_task(rerun())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read_loop(self, link: Link) -> None:
        stats = link.deframer.stats
        noise = stats.noise_bytes
        while True:
            items = await link.receive_stream()
            # StreamReader.read returns without suspending while bytes are buffered, so a
            # board that pushes faster than we decode would starve every other task
            # (MQTT publishing, other boards): yield once per chunk.
            await asyncio.sleep(0)
            for item in items:
                if isinstance(item, FrameError):
                    self.stats.frame_errors += 1
                    self.log.debug("frame dropped", reason=str(item.reason), detail=item.detail)
                    continue
                if isinstance(item, TextLine):
                    self._on_text(item)
                    continue
                self._last_rx = time.monotonic()
                self.stats.packets_in += 1
                self._dispatch(item)
            if stats.noise_bytes - noise >= BOOT_NOISE_BYTES:
                self.suspect_reboot(
                    f"{stats.noise_bytes - noise} bytes of non-text noise on the line"
                )
            noise = stats.noise_bytes

    def _on_text(self, line: TextLine) -> None:
        self.stats.text_lines += 1
        banner = boot_banner(line.text)
        if banner is not None:
            self.suspect_reboot(f"boot ROM banner {banner!r} in line {line.text!r}")
        try:
            self.observer.on_text(self, line)
        except Exception:  # an observer bug must not kill the board's read loop
            self.log.exception("text handler failed", text=line.text)

    def _dispatch(self, packet: Packet) -> None:
        if (
            packet.type == PacketType.NAK
            and packet.seq == 0
            and parse_nak(packet.payload) == ErrorCode.CRC_MISMATCH
        ):
            self.stats.crc_naks += 1
            self._retransmit_oldest()
            return
        if packet.type in RESPONSE_TYPES and packet.seq != 0:
            pending = self._pending.get(packet.seq)
            if pending is not None and not pending.future.done():
                pending.future.set_result(packet)
                return
            self._unmatched.append((packet.type, packet.seq))
        try:
            self.observer.on_event(self, packet)
        except Exception:  # an observer bug must not kill the board's read loop
            self.log.exception("event handler failed", packet=repr(packet))

    def _retransmit_oldest(self) -> None:
        # The board NAKs a corrupted frame with seq 0, not the command's: resend the oldest
        # outstanding command once (§4.1); a second corruption ends in a timeout.
        waiting = [p for p in self._pending.values() if not p.retransmitted]
        if not waiting or self._link is None:
            return
        oldest = min(waiting, key=lambda p: p.sent_at)
        oldest.retransmitted = True
        self.stats.retransmits += 1
        link = self._link
        task = asyncio.get_running_loop().create_task(link.send(oldest.wire))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _keepalive(self, link: Link) -> None:
        interval = self.config.keepalive_s
        if interval <= 0:
            await asyncio.Event().wait()
        misses = 0
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_rx >= interval:
                try:
                    await self.request(PacketType.PING)
                except ConduytTimeoutError:
                    misses += 1
                    self.log.info("keepalive PING unanswered", misses=misses)
                    if misses >= self.config.keepalive_misses:
                        raise ConduytDisconnectedError(
                            f"board stopped answering: {misses} keepalive PINGs unanswered"
                        ) from None
                    continue
                except ConduytNAKError:
                    pass  # an answer all the same
            if misses:
                # Silent for a while, then answering again: a reset looks like this.
                self.suspect_reboot(f"answered again after {misses} unanswered PINGs")
            misses = 0

    def _fail_pending(self, error: ConduytError) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()


def stale_answers(asked: int, unmatched: Sequence[tuple[int, int]]) -> str:
    """Evidence of a stale receive backlog (Q24), or "" if there is none.

    `asked` is the sequence number of the request in flight; `unmatched` the (TYPE, SEQ)
    of answers that matched no pending request. An answer counts when its SEQ is older
    than `asked` by 1..127 in the 1..255 cycle (a newer one is not a backlog).
    """
    older = [f"{type_name(t)} seq {s}" for t, s in unmatched if 1 <= (asked - s) % 255 <= 127]
    return f"request seq {asked} answered by {', '.join(older)}" if older else ""
