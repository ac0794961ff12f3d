"""The connection callbacks of a `ConduytDevice` (`on_connected`, `on_disconnected`,
`docs/library.md` §5): called on the event loop, a coroutine function's coroutine run as
a task that `disconnect()` waits for (at most `CALLBACK_WAIT_S` seconds), so that
`asyncio.run` or `ConduytDeviceSync.close()` does not cancel it half-way. A callback's
exception is logged, never raised; so is a cancelled callback.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TypeVar

from conduyt_bridge.device.library_log import library_logger
from conduyt_bridge.device.reasons import ConnectReason, DisconnectReason

CALLBACK_WAIT_S = 5.0
"""Longest `disconnect()` waits for the coroutine callbacks still running, seconds."""

_Reason = TypeVar("_Reason", ConnectReason, DisconnectReason)


class CallbackRunner:
    """Calls one device's callbacks and keeps the tasks of coroutine callbacks."""

    def __init__(self, device_name: str, logger_name: str) -> None:
        self._device_name = device_name
        self._logger_name = logger_name
        self.tasks: set[asyncio.Task[object]] = set()
        """Coroutine callbacks still running."""

    def __len__(self) -> int:
        return len(self.tasks)

    def fire(self, callback: Callable[[_Reason], object] | None, reason: _Reason) -> None:
        """Call `callback(reason)` (nothing if None); an awaitable result becomes a task.
        Never raises: a failure is logged."""
        if callback is None:
            return
        try:
            result = callback(reason)
            if inspect.isawaitable(result):
                task: asyncio.Task[object] = asyncio.ensure_future(result)
                self.tasks.add(task)
                task.add_done_callback(self._done)
        except Exception:
            library_logger(self._logger_name).exception(
                "connection callback failed", device=self._device_name, reason=str(reason)
            )

    async def drain(self, timeout_s: float = CALLBACK_WAIT_S) -> None:
        """Wait until the coroutine callbacks running now are done, at most `timeout_s`
        seconds (the caller's own task, if it is one of them, is not waited for)."""
        current = asyncio.current_task()
        pending = [t for t in self.tasks if t is not current and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    def _done(self, task: asyncio.Task[object]) -> None:
        self.tasks.discard(task)
        log = library_logger(self._logger_name)
        if task.cancelled():
            log.warning("connection callback was cancelled", device=self._device_name)
        elif (error := task.exception()) is not None:
            log.error("connection callback failed", device=self._device_name, exc_info=error)
