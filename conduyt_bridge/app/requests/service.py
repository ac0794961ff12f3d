"""The request API's actions behind both front ends (`docs/requests.md`): MQTT
(`conduyt_bridge.app.requests.mqtt`) and the web console.

`RequestService.handle` runs one action at a time (a lock: two changes never interleave
their config file writes or board restarts), refuses every change while `[bridge]
allow_remote_config` is false, and turns every failure into an `error` response: a
RequestError's message as it is, anything else (a bug) as `internal error` with the
traceback in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import structlog

from conduyt_bridge.app.requests.contract import RequestResponse
from conduyt_bridge.app.requests.devices import (
    add_device,
    change_options,
    remove_device,
    rename_device,
)
from conduyt_bridge.app.requests.errors import RequestError
from conduyt_bridge.app.requests.host import BridgeControl
from conduyt_bridge.app.requests.reload import reload_config
from conduyt_bridge.app.requests.scan import scan_ports

__all__ = ["Action", "RequestService"]

log = structlog.stdlib.get_logger(__name__)

START_WAIT_S = 15.0
"""How long a request that arrives while the bridge starts waits for its boards to start
(the broker wait, the claims and the adapters' start hooks come first), s."""


class Action(StrEnum):
    """The actions (`docs/requests.md` §3)."""

    DEVICE_ADD = "device/add"
    DEVICE_REMOVE = "device/remove"
    DEVICE_RENAME = "device/rename"
    DEVICE_OPTIONS = "device/options"
    SCAN = "scan"
    CONFIG_RELOAD = "config/reload"


ActionFn = Callable[[BridgeControl, Mapping[str, Any]], Awaitable[Any]]

ACTIONS: dict[Action, ActionFn] = {
    Action.DEVICE_ADD: add_device,
    Action.DEVICE_REMOVE: remove_device,
    Action.DEVICE_RENAME: rename_device,
    Action.DEVICE_OPTIONS: change_options,
    Action.SCAN: scan_ports,
    Action.CONFIG_RELOAD: reload_config,
}


class RequestService:
    """`RequestHandler` of one bridge."""

    def __init__(self, bridge: BridgeControl) -> None:
        self.bridge = bridge
        self.lock = asyncio.Lock()
        """Held while an action runs; SIGHUP's reload takes it too."""

    async def handle(self, action: str, payload: Mapping[str, Any]) -> RequestResponse:
        """Run `action` with the request's JSON object; never raises for a bad request.
        The request's `transaction` (any JSON value) is echoed."""
        if not isinstance(payload, Mapping):  # a front end's bug, answered all the same
            kind = type(payload).__name__
            error = f"request payload must be a JSON object, not {kind}"
            return RequestResponse("error", None, error)
        transaction = payload.get("transaction")
        try:
            data = await self._run(action, payload)
        except RequestError as exc:
            log.info("request refused", action=action, error=str(exc))
            return RequestResponse("error", None, str(exc), transaction)
        except Exception:
            log.exception("request failed", action=action)
            error = f"internal error while running {action}: see the bridge's log"
            return RequestResponse("error", None, error, transaction)
        return RequestResponse("ok", data, None, transaction)

    async def _run(self, action: str, payload: Mapping[str, Any]) -> Any:
        try:
            kind = Action(action)
        except ValueError:
            known = ", ".join(a.value for a in Action)
            raise RequestError(f"unknown action {action!r}: one of {known}") from None
        if not await self.bridge.wait_running(START_WAIT_S) and not self.bridge.stopping:
            # Before `run()` started the boards, an added board would miss its session.
            raise RequestError(f"{kind} refused: the bridge is not running")
        async with self.lock:
            # Checked under the lock: a request that waited for a reload or a shutdown
            # sees what they left.
            if self.bridge.stopping:
                raise RequestError(f"{kind} refused: the bridge is shutting down")
            if kind is not Action.SCAN and not self.bridge.settings.bridge.allow_remote_config:
                raise RequestError(
                    f"{kind} refused: remote configuration is off ([bridge] "
                    "allow_remote_config = false); only scan is answered"
                )
            return await ACTIONS[kind](self.bridge, payload)

    async def reload(self) -> None:
        """SIGHUP: reload the config file (whatever `allow_remote_config` says: the
        signal comes from the host) once the bridge runs; the outcome is logged."""
        if not await self.bridge.wait_running(START_WAIT_S):
            log.warning("config reload skipped: the bridge is not running")
            return
        async with self.lock:
            if self.bridge.stopping:
                log.info("config reload skipped: the bridge is shutting down")
                return
            try:
                await reload_config(self.bridge)
            except RequestError as exc:  # the user's file, not a bridge bug: no error level
                log.warning("config reload failed", error=str(exc))
            except Exception:
                log.exception("config reload failed")
