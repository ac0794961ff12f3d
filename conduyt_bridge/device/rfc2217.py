"""serialx's RFC 2217 client, adapted to ser2net 4.x (docs/network-serial.md).

serialx 1.15 sends SET-LINESTATE-MASK and SET-MODEMSTATE-MASK right after the COM-PORT-OPTION
negotiation and waits for the server's acknowledgements (codes 110 and 111). ser2net 4.x
(gensio) never sends those: it answers each mask with a notification of the current state
instead (`ff fa 2c 6a 00 ff f0` NOTIFY-LINESTATE, `ff fa 2c 6b 00 ff f0` NOTIFY-MODEMSTATE),
so every `rfc2217://` open against ser2net timed out after serialx's connect timeout.

`Ser2netRfc2217Transport` sends the two masks without waiting for an answer, whatever it
is (an acknowledgement, a notification, or nothing). Nothing is lost by that: the masks
only subscribe to state notifications, which serialx handles whenever they arrive, and the
commands that follow on the same TCP stream (SET-BAUDRATE, SET-DATASIZE, SET-PARITY,
SET-STOPSIZE, SET-CONTROL) are still acknowledged by every server, ser2net included, so
the open still proves that the server took the port settings.

This overrides serialx private methods (`_send_and_wait`, `_send_command`), so
`pyproject.toml` pins serialx to the exact version checked here (`SERIALX_VERSION`), and
`tests/e2e/test_rfc2217_adapter.py` fails when an upgrade changes what this relies on.
"""

from __future__ import annotations

from importlib.metadata import version

from serialx.platforms.serial_rfc2217 import RFC2217SerialTransport
from serialx.platforms.serial_rfc2217.types import (
    Rfc2217Command,
    SetLinestateMaskCmd,
    SetModemstateMaskCmd,
)

SERIALX_VERSION = "1.15.1"
"""The serialx release whose RFC 2217 internals this adapter was written against."""

STATE_MASK_COMMANDS: tuple[type[Rfc2217Command], ...] = (SetLinestateMaskCmd, SetModemstateMaskCmd)
"""Commands some servers (ser2net 4.x) answer with a notification instead of an ack."""


def installed_serialx_version() -> str:
    """The installed serialx version (from its distribution metadata)."""
    return version("serialx")


class Ser2netRfc2217Transport(RFC2217SerialTransport):
    """serialx's async RFC 2217 transport that does not wait for state-mask answers."""

    async def _send_and_wait(self, cmd: Rfc2217Command) -> Rfc2217Command:
        if isinstance(cmd, STATE_MASK_COMMANDS):
            # Whatever answer comes (ack, notification) is parsed and stored by serialx's
            # engine as usual; nobody waits for it.
            self._send_command(cmd)
            return cmd
        return await super()._send_and_wait(cmd)
