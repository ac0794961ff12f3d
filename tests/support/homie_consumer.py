"""A small Homie 5 controller for the tests, written from the convention (homieiot/convention
`convention.md`) and independent of the bridge's code.

It discovers devices the way the convention asks (`{domain}/5/+/$state`, then
`$description`), reads property values and checks each against its property object
(`support.homie_schema.value_problem`), decodes them by datatype, derives a child's state
from its root ("Device hierarchy": a child of a `lost` root is `lost`), and sends `/set`
commands as non-retained messages.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any, Self

from .broker import Broker
from .homie_schema import value_problem
from .mqtt_client import publish
from .recorder import Received, Recorder


def decode(prop: dict[str, Any], payload: bytes) -> Any:
    """A valid value payload as a Python value (raises AssertionError for an invalid one)."""
    problem = value_problem(prop, payload)
    assert problem is None, f"invalid value for {prop}: {problem}"
    text = payload.decode("utf-8")
    datatype = prop["datatype"]
    if datatype == "integer":
        return int(text)
    if datatype == "float":
        return float(text)
    if datatype == "boolean":
        return text == "true"
    if datatype == "json":
        return json.loads(text)
    if datatype == "string":
        return "" if text == "\x00" else text
    return text


class HomieConsumer:
    """Watches every Homie 5 device under `domain` on a broker."""

    def __init__(self, broker: Broker, domain: str = "homie") -> None:
        self.broker = broker
        self.domain = domain
        self.rec = Recorder(
            broker,
            f"{domain}/5/+/$state",
            f"{domain}/5/+/$description",
            f"{domain}/5/+/+/+",
        )

    async def __aenter__(self) -> Self:
        await self.rec.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rec.__aexit__(exc_type, exc, tb)

    def topic(self, device: str, *levels: str) -> str:
        return "/".join((self.domain, "5", device, *levels))

    # ---- reading ------------------------------------------------------------------------

    def states(self, device: str) -> list[str]:
        """Every `$state` payload seen for `device`, in order."""
        return [m.payload.decode() for m in self.rec.messages(self.topic(device, "$state"))]

    def state(self, device: str) -> str | None:
        """The device's own latest `$state` (None when never seen or cleared)."""
        seen = self.states(device)
        return seen[-1] if seen and seen[-1] else None

    def description(self, device: str) -> dict[str, Any] | None:
        """The device's latest `$description` (None when never seen or cleared)."""
        seen = self.rec.messages(self.topic(device, "$description"))
        return json.loads(seen[-1].payload) if seen and seen[-1].payload else None

    def effective_state(self, device: str) -> str | None:
        """The device's state per "Device hierarchy": `lost` when its root is `lost`."""
        doc = self.description(device) or {}
        root = doc.get("root")
        if root is not None and self.state(root) == "lost":
            return "lost"
        return self.state(device)

    def property(self, device: str, node: str, prop: str) -> dict[str, Any]:
        """The property object from the device's description."""
        doc = self.description(device)
        assert doc is not None, f"no description of {device}"
        return dict(doc["nodes"][node]["properties"][prop])

    def values(self, device: str, node: str, prop: str) -> list[Received]:
        return self.rec.messages(self.topic(device, node, prop))

    def value(self, device: str, node: str, prop: str) -> Any:
        """The latest value, checked against the property and decoded."""
        seen = self.values(device, node, prop)
        assert seen, f"no value on {self.topic(device, node, prop)}"
        return decode(self.property(device, node, prop), seen[-1].payload)

    # ---- waiting ------------------------------------------------------------------------

    async def wait_state(self, device: str, state: str, within_s: float = 10.0) -> None:
        """Wait until the device's latest `$state` is `state`."""
        topic = self.topic(device, "$state")
        deadline = time.monotonic() + within_s
        while self.state(device) != state:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{device} is {self.state(device)!r}, not {state!r}")
            try:
                await self.rec.wait_for_new(topic, timeout=min(left, 0.5))
            except TimeoutError:
                continue

    async def wait_value(
        self, device: str, node: str, prop: str, expected: Any = None, within_s: float = 5.0
    ) -> Any:
        """Wait for a value (equal to `expected` unless it is None); returns it decoded."""
        topic = self.topic(device, node, prop)

        def matches(payload: bytes) -> bool:
            if expected is None:
                return True
            return bool(decode(self.property(device, node, prop), payload) == expected)

        got = await self.rec.wait_for(topic, matches, timeout=within_s)
        return decode(self.property(device, node, prop), got.payload)

    # ---- commanding ---------------------------------------------------------------------

    async def set(self, device: str, node: str, prop: str, payload: bytes | str) -> None:
        """Publish a `/set` command (non-retained, as the convention demands)."""
        await publish(self.broker, self.topic(device, node, prop, "set"), payload, retain=False)


__all__ = ["HomieConsumer", "decode"]
