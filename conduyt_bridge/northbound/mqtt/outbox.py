"""The outbox of the MQTT connection: messages waiting to be published, in publish order.

Publishing never blocks the caller (`docs/architecture.md` §6): what cannot go out at
once waits here, coalesced per topic (a newer message for a topic replaces the waiting
one, so state topics keep only their latest value) and bounded by `OUTBOX_LIMIT`, the
oldest dropped first. A publish that failed in flight goes back at its place in publish
order (`Outbox.requeue`), so two messages for one topic never change order. No IO here:
`conduyt_bridge.northbound.mqtt.connection` drains the outbox while the broker is up.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from paho.mqtt.properties import Properties

__all__ = ["OUTBOX_LIMIT", "OutMessage", "Outbox"]

OUTBOX_LIMIT = 20_000
"""Messages kept while the broker is away; the oldest are dropped past this."""


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message to publish."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties | None = None


class Outbox(dict[object, tuple[int, OutMessage]]):
    """Messages waiting to go out, by coalescing key, with their publish sequence number;
    always in ascending sequence order (`requeue` keeps it so).

    The key is the topic for a coalescing message, and something unique for one that must
    not be coalesced. A plain `dict` otherwise (the connection takes the first entry on
    its hot path), which also counts its entries per topic in `topics`: a message for a
    topic with one waiting here must wait too, or it would overtake it. Remove entries with
    `del` or `clear` (both keep `topics`), add them with `put` or `requeue`.
    """

    __slots__ = ("topics",)

    def __init__(self) -> None:
        super().__init__()
        self.topics: dict[str, int] = {}
        """Entries waiting per topic (topics with none are absent)."""

    def _count(self, topic: str) -> None:
        self.topics[topic] = self.topics.get(topic, 0) + 1

    def __delitem__(self, key: object) -> None:
        topic = self[key][1].topic
        super().__delitem__(key)
        left = self.topics[topic] - 1
        if left:
            self.topics[topic] = left
        else:
            del self.topics[topic]

    def clear(self) -> None:
        super().clear()
        self.topics.clear()

    def put(self, key: object, seq: int, msg: OutMessage, *, coalesce: bool) -> bool:
        """Queue `msg` last; with `coalesce` it replaces a message waiting under `key`.

        Returns True when that pushed the outbox past `OUTBOX_LIMIT` and its oldest
        message was dropped.
        """
        if coalesce and key in self:
            del self[key]  # re-insert at the end: keeps per-topic order with others
        self[key] = (seq, msg)
        self._count(msg.topic)
        if len(self) > OUTBOX_LIMIT:
            del self[next(iter(self))]
            return True
        return False

    def requeue(self, key: object, seq: int, msg: OutMessage) -> None:
        """Put a failed message back into the outbox at its place in publish order.

        Appending it would put it behind messages published after it, and a link that
        drops during a burst (a discovery hand-over: removals, then new configs) would then
        reorder messages for the same topic: the older one would arrive last and win.
        """
        self._count(msg.topic)
        if not self or next(reversed(self.values()))[0] < seq:
            self[key] = (seq, msg)
            return
        items = list(self.items())
        at = bisect.bisect_left(items, seq, key=lambda item: item[1][0])
        items.insert(at, (key, (seq, msg)))
        super().clear()  # not self.clear(): the topic counts stay
        self.update(items)
