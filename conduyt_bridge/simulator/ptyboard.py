"""Serve a simulated board on a pseudo-terminal, like a board on a USB serial port.

Any serial host (the bridge, serialx, pyserial, `picocom`) opens `PtyBoard.path`, the pty
slave. `unplug()` and `replug()` simulate pulling and reinserting the USB cable: the old
pty disappears (the host's next read fails with EIO), a new one appears under a new path,
and the optional stable symlink (`link`, like `/dev/serial/by-id/...`) is moved to it.
"""

from __future__ import annotations

import contextlib
import os
import pty
import tty
from pathlib import Path
from types import TracebackType

from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.pty_transport import open_pty_master_stream
from conduyt_bridge.simulator.runner import BoardRunner


class PtyBoard:
    """A board on a pty; use as `async with PtyBoard(board) as pb: ... pb.path ...`.

    Args:
        board: the simulated board (COBS framing, as on a serial port).
        link: optional path of a symlink kept pointing at the current slave; it exists
            only while the board is plugged in, like a udev by-id link.
        tick_interval_s, loop_rate_hz: passed to `BoardRunner`.

    While no host has the slave open, whatever the board sends is discarded (nobody is
    listening on a real port either); its simulation keeps running.
    """

    def __init__(
        self,
        board: SimulatedBoard,
        *,
        link: str | os.PathLike[str] | None = None,
        tick_interval_s: float | None = None,
        loop_rate_hz: float | None = None,
    ) -> None:
        self.board = board
        self._loop_rate_hz = loop_rate_hz
        self.link: Path | None = Path(link) if link is not None else None
        self._tick_interval_s = tick_interval_s
        self._path: str | None = None
        self._runner: BoardRunner | None = None
        self._unplugged: list[BoardRunner] = []

    async def __aenter__(self) -> PtyBoard:
        await self.plug()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def plugged(self) -> bool:
        """True while a pty is being served."""
        return self._runner is not None

    @property
    def path(self) -> str:
        """The current slave device path (e.g. `/dev/pts/3`). RuntimeError when unplugged."""
        if self._path is None:
            raise RuntimeError("the simulated board is unplugged")
        return self._path

    @property
    def runner(self) -> BoardRunner | None:
        """The runner serving the current pty, None when unplugged."""
        return self._runner

    @property
    def bytes_received(self) -> int:
        """Bytes the board has read from its ports since this object was made, over every
        plug-in: a host that wrote nothing leaves it unchanged."""
        runners = [*self._unplugged, *([self._runner] if self._runner is not None else [])]
        return sum(r.bytes_received for r in runners)

    async def plug(self) -> str:
        """Open a new pty and serve the board on it; return the slave path.

        Does nothing but return the path if already plugged in.
        """
        if self._runner is not None:
            return self.path
        master, slave = pty.openpty()
        try:
            # Raw mode on the slave, so that no line discipline touches the binary
            # frames (echo, CR/LF mapping, ^C). The settings stay with the pty after this
            # fd is closed; hosts usually set raw mode again themselves.
            tty.setraw(slave)
            path = os.ttyname(slave)
        except BaseException:
            os.close(master)
            raise
        finally:
            # Our copy of the slave is not needed: hosts open it by path. Not holding it
            # is also what makes the master see EIO when the host closes its end.
            os.close(slave)
        reader, writer, _ = open_pty_master_stream(master)
        self._runner = BoardRunner(
            self.board,
            reader,
            writer,
            tick_interval_s=self._tick_interval_s,
            loop_rate_hz=self._loop_rate_hz,
        )
        self._runner.start()
        self._path = path
        self._point_link(path)
        return path

    async def unplug(self) -> None:
        """Pull the cable: close the master (the host's next read of the slave fails with
        EIO, or returns EOF) and remove the symlink. The board keeps its state."""
        runner, self._runner = self._runner, None
        self._path = None
        self._remove_link()
        if runner is not None:
            self._unplugged.append(runner)
            await runner.close()

    async def replug(self, *, reboot: bool = True) -> str:
        """Plug back in on a NEW pty (a new path); return it. The symlink follows.

        `reboot` (default True) power-cycles the board first, as a USB replug resets it.
        """
        await self.unplug()
        if reboot:
            self.board.reboot()
        return await self.plug()

    async def close(self) -> None:
        """Stop serving and remove the symlink (same as `unplug`)."""
        await self.unplug()

    def _point_link(self, target: str) -> None:
        if self.link is None:
            return
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(target)
        tmp.replace(self.link)  # atomic: a host never sees the link missing or half-made

    def _remove_link(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
