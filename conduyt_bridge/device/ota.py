"""`ConduytOTA`: flash a firmware image through a device's OTA primitives (conduyt-py's
helper of the same name; `docs/protocol.md` §4.2, Q15)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Self, cast

from conduyt_bridge.device.conduyt_device import ConduytDevice
from conduyt_bridge.device.conduyt_sync import ConduytDeviceSync
from conduyt_bridge.errors import ConduytPayloadError, ErrorName

ProgressCallback = Callable[[int, int], None]
"""`on_progress(sent_bytes, total_bytes)`, after each chunk."""

OTA_CHUNK_HEADER = 4
"""Bytes of an OTA_CHUNK payload before the data: the offset, u32le."""


class ConduytOTA:
    """Sends an image with OTA_BEGIN, OTA_CHUNK… and OTA_FINALIZE.

    The firmware checks no SHA-256 and non-ESP32 builds may claim OTA and NAK the chunks
    (Q15): check `device.capabilities.ota_capable` and expect `ConduytNAKError`. Given a
    `ConduytDeviceSync`, `flash` blocks. The constructor raises TypeError for anything
    but a `ConduytDevice` or `ConduytDeviceSync`.
    """

    def __new__(cls, device: ConduytDevice | ConduytDeviceSync) -> Self:
        if isinstance(device, ConduytDeviceSync):
            return cast(Self, device.blocking(cls(device._device)))
        return super().__new__(cls)

    def __init__(self, device: ConduytDevice | ConduytDeviceSync) -> None:
        if not isinstance(device, ConduytDevice):  # a sync device got a proxy from __new__
            raise TypeError(
                f"{type(self).__name__} takes a ConduytDevice or a ConduytDeviceSync, "
                f"not {type(device).__module__}.{type(device).__qualname__}"
            )
        self._device = device

    async def flash(
        self,
        firmware: bytes,
        *,
        chunk_size: int | None = None,
        on_progress: ProgressCallback | None = None,
        sha256: bytes | None = None,
    ) -> None:
        """Flash `firmware`; returns once OTA_FINALIZE is acknowledged (the board then
        reboots). `chunk_size` is the data bytes per chunk; the default is the most the
        link carries (max_payload - 8 on serial links, Q15). `sha256` defaults to the
        image's.

        Raises ConduytPayloadError `EMPTY_PAYLOAD` (an empty image), then what
        `ConduytDevice.ota_begin` / `ota_chunk` / `ota_finalize` raise.
        """
        if not firmware:
            raise ConduytPayloadError("OTA: the firmware image is empty", ErrorName.EMPTY_PAYLOAD)
        digest = sha256 if sha256 is not None else hashlib.sha256(firmware).digest()
        size = chunk_size or max(1, self._device._context.max_command_payload - OTA_CHUNK_HEADER)
        await self._device.ota_begin(len(firmware), digest)
        sent = 0
        while sent < len(firmware):
            end = min(sent + size, len(firmware))
            await self._device.ota_chunk(sent, firmware[sent:end])
            sent = end
            if on_progress is not None:
                on_progress(sent, len(firmware))
        await self._device.ota_finalize()
