"""Over-the-air update on an OTA-capable ESP32 build (`docs/protocol.md` §4.2, quirk Q15).

BEGIN `[total u32le][sha256 32 bytes]` opens a session; CHUNK `[offset u32le][data…]` must
continue exactly where the image ends so far (no retransmits of accepted offsets);
FINALIZE succeeds when the image is complete, after which the board reboots ~500 ms later.
The SHA-256 is stored but never checked, as on the real board.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OTA_PARTITION_BYTES = 0x1E0000
"""Largest image `Update.begin` accepts: the default ESP32 OTA partition, 1.875 MiB."""

REBOOT_DELAY_S = 0.5
"""Delay between the FINALIZE ACK and the reboot, seconds."""


@dataclass(slots=True)
class OtaUpdater:
    """OTA session state; each method returns True for ACK, False for NAK OTA_INVALID."""

    total: int = 0
    sha256: bytes = b""
    image: bytearray = field(default_factory=bytearray)
    active: bool = False

    def begin(self, payload: bytes) -> bool:
        """OTA_BEGIN: start a session for `total` bytes (any running session is dropped)."""
        self.active = False
        if len(payload) < 36:
            return False
        total = int.from_bytes(payload[:4], "little")
        if not 0 < total <= OTA_PARTITION_BYTES:
            return False
        self.total, self.sha256, self.image, self.active = total, payload[4:36], bytearray(), True
        return True

    def chunk(self, payload: bytes) -> bool:
        """OTA_CHUNK: append data at `offset`, which must equal the bytes received so far."""
        if not self.active or len(payload) < 4:
            return False
        offset = int.from_bytes(payload[:4], "little")
        data = payload[4:]
        if offset != len(self.image) or offset + len(data) > self.total:
            return False
        self.image += data
        return True

    def finalize(self) -> bytes | None:
        """OTA_FINALIZE: the complete image on success (then reboot), None on failure."""
        if not self.active:
            return None
        self.active = False
        if len(self.image) != self.total:
            return None
        return bytes(self.image)
