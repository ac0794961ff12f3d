"""DeviceSession: one board's link, handshake, sequence numbers, requests and events.

Behaviour per `docs/architecture.md` §4 and `docs/protocol.md` §1.6, §3.5, §7:
HELLO (retried with backoff, auto-reset boards reboot when the port opens), RESET and
STREAM_STOP to clear a previous host's leftovers, then the handshake hooks (pin
subscriptions, replay of retained writable datastreams). Sequence numbers 1..255, never
0 (events and CRC-NAKs carry 0) and never one still in flight. A NAK CRC_MISMATCH with
seq 0 makes the oldest pending command be sent again. A keepalive PING declares the link
lost after N unanswered tries. The link is reopened forever with capped exponential
backoff; for a network serial server the wait is cut short once the server is back
(`conduyt_bridge.device.reopen`, `docs/network-serial.md`).

A reboot behind an open port re-runs the handshake routine (`suspect_reboot`; the
evidence is in `conduyt_bridge.device.reboot`).

A board on the Conduyt TCP transport may answer every request with the reply to an older
one after a stall (`docs/protocol.md` Q24): the handshake drains that backlog first
(`conduyt_bridge.device.backlog`).

Parts live in sibling modules: the settings read (`session_config`), the counters
(`session_stats`), the pending-request table (`pending`), the keepalive (`keepalive`),
the wait before a reopen (`reopen`), the backlog drain (`backlog`), reboot evidence
(`reboot`), why a link ended (`link_loss`) and the read loop (`receive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Protocol

import structlog

from conduyt_bridge.device.backlog import UNMATCHED_KEPT, drain_backlog, stale_answers
from conduyt_bridge.device.capabilities import check_payload_size
from conduyt_bridge.device.keepalive import keepalive
from conduyt_bridge.device.link import Link
from conduyt_bridge.device.link_loss import LinkLoss, LossKind, loss_kind
from conduyt_bridge.device.pending import PendingTable
from conduyt_bridge.device.reboot import RerunLimiter
from conduyt_bridge.device.receive import read_loop
from conduyt_bridge.device.reopen import wait_before_reopen
from conduyt_bridge.device.serial_text import boot_banner
from conduyt_bridge.device.session_config import SessionConfig
from conduyt_bridge.device.session_stats import SessionStats
from conduyt_bridge.device.transports import Transport
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
from conduyt_bridge.protocol.framing import TextLine
from conduyt_bridge.protocol.hello import HelloResp, parse_hello
from conduyt_bridge.protocol.packet import Packet, encode_packet

HELLO_ATTEMPTS = 6
"""HELLO tries per opened link before it is closed and reopened (§3.5: boards that reset
on open need a few seconds)."""


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
        nobody waits for). Must not block. An observer may also have `on_events` (a run
        of event packets from one read at once, `conduyt_bridge.device.receive`)."""
        ...

    def on_text(self, session: DeviceSession, line: TextLine) -> None:
        """A text line the board printed between frames (e.g. `Serial.println`). Must not
        block."""
        ...


HandshakeHook = Callable[["DeviceSession"], Awaitable[None]]


class DeviceSession:
    """Owns one board: its transport, sequence-number space and pending-request table.

    `config` is any `SessionConfig`: the daemon's `DeviceConfig`, or a `SessionOptions`.
    """

    def __init__(
        self,
        config: SessionConfig,
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
        self.last_loss: LinkLoss | None = None
        """How the last open attempt or opened link ended; None before the first end."""
        self.board_changed = False
        """True during/after a handshake that found another board or firmware on the port."""
        self.online_since: float | None = None
        self._link: Link | None = None
        self._pending = PendingTable()
        self._window = asyncio.Semaphore(1)
        self._last_rx = 0.0
        self._identity: tuple[object, ...] | None = None
        self._rerun_limiter = RerunLimiter()
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
            seq = self._pending.next_seq()
            pending = self._pending.open(seq, encode_packet(type_, seq, payload), name)
            try:
                await link.send(pending.wire)
                self.stats.packets_out += 1
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that races with the reply (gh-86296).
                async with asyncio.timeout(timeout):
                    reply = await pending.future
            except TimeoutError:
                self.stats.timeouts += 1
                raise ConduytTimeoutError(name, timeout) from None
            finally:
                self._pending.close(seq)
        if reply.type == PacketType.NAK:
            self.stats.naks += 1
            code = parse_nak(reply.payload)
            raise ConduytNAKError(code, error_name(code), name, seq=seq)
        self.stats.record_latency(time.monotonic() - pending.sent_at)
        return reply

    async def run(self, *, reconnect: bool | Callable[[], bool] = True) -> None:
        """Keep the board connected forever (until cancelled).

        `reconnect` False (or a callable returning False, asked each time a link ends or
        an open fails): return instead, with no backoff wait; `last_loss` then says why.
        However it ends (a cancellation included), `state` is then OFFLINE.
        """
        keep_going = reconnect if callable(reconnect) else lambda: reconnect
        try:
            await self._run(keep_going)
        finally:
            self.state = SessionState.OFFLINE
            self.online_since = None

    async def _run(self, keep_going: Callable[[], bool]) -> None:
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
                self._note_loss(
                    LinkLoss(
                        LossKind.OPEN_FAILED,
                        f"cannot open {self.transport.description}: {error}",
                        exc,
                    )
                )
                again = keep_going()
                self.log.warning(
                    "cannot open board",
                    port=self.transport.description,
                    error=error,
                    retry_in_s=backoff if again else None,
                )
                if not again:
                    return
                refused = isinstance(exc, OSError) and not isinstance(exc, TimeoutError)
                await self._wait_before_reopen(backoff, server_down=refused)
                backoff = min(backoff * 2, cfg.reconnect_max_s)
                continue
            loss = await self._serve(link)
            if self.online_since is not None and time.monotonic() - self.online_since > 10:
                backoff = cfg.reconnect_min_s
            was_online = self.state is SessionState.ONLINE
            self.state = SessionState.OFFLINE
            self.online_since = None
            self._note_loss(loss)
            if was_online:
                self.log.warning("board offline", reason=loss.reason)
                with contextlib.suppress(Exception):
                    await self.observer.on_offline(self, loss.reason)
            again = keep_going()
            if not was_online:
                retry_in_s = backoff if again else None
                self.log.info("handshake failed", reason=loss.reason, retry_in_s=retry_in_s)
            if not again:
                return
            await self._wait_before_reopen(backoff, server_down=False)
            backoff = min(backoff * 2, cfg.reconnect_max_s)

    # ---- internals ----------------------------------------------------------------------

    async def _wait_before_reopen(self, delay_s: float, *, server_down: bool) -> None:
        """Sleep `delay_s` before reopening, or less if a network server comes back
        (`conduyt_bridge.device.reopen.wait_before_reopen`)."""
        await wait_before_reopen(self.transport, delay_s, server_down=server_down, log=self.log)

    def _note_loss(self, loss: LinkLoss) -> None:
        self.last_loss = loss
        self.last_error = loss.reason

    async def _serve(self, link: Link) -> LinkLoss:
        """Run one opened link until it is lost; returns how it ended."""
        self._link = link
        self._window = asyncio.Semaphore(1 if link.stop_and_wait else 4)
        self.state = SessionState.CONNECTING
        self._last_rx = time.monotonic()
        link.coalesce_reads(self.config.read_coalesce_ms / 1000, self._pending.waiting)
        reader = asyncio.create_task(read_loop(self, link), name=f"read-{self.device_id}")
        ka: asyncio.Task[None] | None = None
        try:
            await self._handshake(link, reader)
            ka = asyncio.create_task(
                keepalive(
                    lambda: self.request(PacketType.PING),
                    lambda: self._last_rx,
                    interval_s=self.config.keepalive_s,
                    misses_allowed=self.config.keepalive_misses,
                    on_answer_after_misses=lambda misses: self.suspect_reboot(
                        # Silent for a while, then answering again: a reset looks like this.
                        f"answered again after {misses} unanswered PINGs"
                    ),
                    log=self.log,
                ),
                name=f"ka-{self.device_id}",
            )
            done, _ = await asyncio.wait({reader, ka}, return_when=asyncio.FIRST_COMPLETED)
            exc = next(iter(done)).exception()
            if exc is None:
                return LinkLoss(LossKind.CLOSED, "link closed")
            return LinkLoss(loss_kind(exc, LossKind.IO_ERROR), describe_exception(exc), exc)
        except ConduytError as exc:
            return LinkLoss(loss_kind(exc, LossKind.HANDSHAKE_FAILED), str(exc), exc)
        except Exception as exc:  # a bug in a hook or observer: drop this link, reconnect
            self.log.exception("board session failed")
            return LinkLoss(LossKind.INTERNAL, f"internal error: {exc!r}", exc)
        finally:
            children = [t for t in (reader, ka) if t is not None]
            for task in children:
                task.cancel()
            self._link = None
            self._pending.fail_all(ConduytDisconnectedError(f"{self.device_id} went offline"))
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
                stale = stale_answers(self._pending.seq, list(self._unmatched))
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
        timeout_s = self.config.command_timeout_ms / 1000
        return await drain_backlog(
            link,
            self._pending,
            self._window,
            self.stats,
            timeout_s=timeout_s,
            evidence=evidence,
            log=self.log,
        )

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
        `REBOOT_CHECK_INTERVAL_S`."""
        if not self.online or not self._rerun_limiter.allow(time.monotonic()):
            return
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
            if self._pending.resolve(packet):
                return
            self._unmatched.append((packet.type, packet.seq))
        try:
            self.observer.on_event(self, packet)
        except Exception:  # an observer bug must not kill the board's read loop
            self.log.exception("event handler failed", packet=repr(packet))

    def _retransmit_oldest(self) -> None:
        # The board NAKs a corrupted frame with seq 0, not the command's: resend the oldest
        # outstanding command once (§4.1); a second corruption ends in a timeout.
        link = self._link
        if link is None:
            return
        oldest = self._pending.take_oldest_for_retransmit()
        if oldest is None:
            return
        self.stats.retransmits += 1
        task = asyncio.get_running_loop().create_task(link.send(oldest.wire))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
