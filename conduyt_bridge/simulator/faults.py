"""Fault knobs of a simulated board: ways a real link or a real sketch misbehaves.

Tests flip these on `SimulatedBoard.faults` at any time; the board consults them on every
packet it answers or emits. Counters (`drop_replies`, `corrupt_crc`) count down as they
are used, and `garbage` and `print_lines` are emptied once emitted, so a knob set by a
test affects exactly what it says and then the board behaves again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Faults:
    """Misbehaviour to inject; the defaults make a healthy board.

    Attributes:
        drop_replies: drop the next N direct replies (PONG, HELLO_RESP, ACK, NAK,
            *_RESP). The command is still executed: the reply is "lost on the wire", so
            the host sees a timeout. Events are not affected.
        corrupt_crc: flip every bit of the CRC byte of the next N outgoing packets
            (replies and events alike), so the host's CRC check fails (§2).
        garbage: bytes to emit (unframed) in front of the next outgoing frame, like text
            a sketch prints on the same `Serial` or an ESP32 boot banner (quirk Q19).
            Emitted once, then cleared.
        print_lines: lines the sketch prints with `Serial.println` (each followed by
            CR LF) on its next loop pass, between frames: at the next tick, before that
            tick's events. Emitted once, then cleared.
        silent: a hung board. Incoming packets are still logged in
            `SimulatedBoard.received` but neither executed nor answered, and no events
            are pushed (CRC NAKs are suppressed as well).
        nak: packet TYPE byte → NAK error code to answer instead of executing the
            command, e.g. `{0x40: 0x0A}` makes every MOD_CMD answer MODULE_BUSY. The NAK
            echoes the command's SEQ like a real NAK (§4.1).
        delay_s: reply latency in seconds, applied by the async runner before it
            writes a reply (the sans-IO board ignores it). Events are not delayed.
        tcp_backlog: the firmware's TCP transport (`docs/protocol.md` Q24), on a raw
            link: each `receive` call is one `poll()` and decodes at most the oldest
            complete packet, so packets that arrived together queue up; and the async
            TCP client keeps that queue (no reboot) when it reconnects. After a stall
            every request gets the answer to an older one.
        stalled: the board's process is stopped (SIGSTOP): the async runner neither
            reads nor ticks, so the host's bytes wait in the socket; clearing it is
            SIGCONT.
    """

    drop_replies: int = 0
    corrupt_crc: int = 0
    garbage: bytes = b""
    print_lines: list[str] = field(default_factory=list)
    silent: bool = False
    nak: dict[int, int] = field(default_factory=dict)
    delay_s: float = 0.0
    tcp_backlog: bool = False
    stalled: bool = False

    def clear(self) -> None:
        """Back to a healthy board."""
        self.drop_replies = 0
        self.corrupt_crc = 0
        self.garbage = b""
        self.print_lines.clear()
        self.silent = False
        self.nak.clear()
        self.delay_s = 0.0
        self.tcp_backlog = False
        self.stalled = False
