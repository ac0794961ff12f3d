"""The request API's contract, shared by its two front ends: MQTT
(`{base}/bridge/{bridge_id}/request/{action}` → `…/response/{action}`) and the web
console's HTTP routes (`docs/requests.md`).

Both front ends hand a decoded JSON object to `RequestHandler.handle` and serialise the
`RequestResponse` it returns; neither knows the actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class RequestResponse:
    """The outcome of one request: `status` `ok` with `data`, or `error` with a message
    that says what was wrong and whose fault it is. `transaction` echoes the request's."""

    status: Literal["ok", "error"]
    data: Any = None
    error: str | None = None
    transaction: Any = None

    def to_json(self) -> dict[str, Any]:
        """The response document (`docs/requests.md` §1): `error` only when status is
        `error`, `transaction` only when the request had one."""
        doc: dict[str, Any] = {"status": self.status, "data": self.data}
        if self.error is not None:
            doc["error"] = self.error
        if self.transaction is not None:
            doc["transaction"] = self.transaction
        return doc


class RequestHandler(Protocol):
    """Runs one request action (`device/add`, `device/remove`, `device/rename`,
    `device/options`, `scan`, `config/reload`)."""

    async def handle(self, action: str, payload: Mapping[str, Any]) -> RequestResponse:
        """Run `action` with the request's JSON object; never raises for a bad request
        (that is an `error` response)."""
        ...


__all__ = ["RequestHandler", "RequestResponse"]
