"""The topic filters of the MQTT connection, kept across reconnects, and how they are
requested from the broker.

The filters are re-applied at every connect (`docs/architecture.md` §6). MQTT 5 requests
carry Retain As Published and a Retain Handling per filter; a filter the broker refuses
(an ACL that does not cover it) is logged at error level and listed in `refused` for
health. `conduyt_bridge.northbound.mqtt.connection` decides when to apply them.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiomqtt
import structlog
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = ["Subscriptions"]

log = structlog.stdlib.get_logger("conduyt_bridge.northbound.mqtt")


class Subscriptions:
    """The filters to hold, their QoS, which want retained messages at every subscribe,
    and which the broker refused."""

    def __init__(self) -> None:
        self.filters: dict[str, int] = {}
        """QoS per filter, in the order they were added."""
        self.resend_retained: set[str] = set()
        self.refused: set[str] = set()
        """Filters the broker refused (an ACL that does not cover them), for health."""

    def add(self, filters: Iterable[str], qos: int, *, resend_retained: bool) -> list[str]:
        """Hold `filters` from now on; returns those that were not held yet."""
        new = [f for f in filters if f not in self.filters]
        for f in new:
            self.filters[f] = qos
            if resend_retained:
                self.resend_retained.add(f)
        return new

    def remove(self, filters: Iterable[str]) -> list[str]:
        """Stop holding `filters`; returns those that were held."""
        gone = [f for f in filters if self.filters.pop(f, None) is not None]
        self.resend_retained.difference_update(gone)
        return gone

    async def apply(self, client: aiomqtt.Client, filters: list[str], *, v5: bool) -> None:
        """Subscribe `client` to `filters` and note the ones the broker refused.

        Raises aiomqtt.MqttError.
        """
        if v5:
            # Retain-as-published lets us see (and refuse) retained commands; handling 0
            # (`resend_retained`) has the broker send them at every subscribe, resumed
            # sessions included, so a stale retained command gets its error report after
            # every restart instead of sitting on the broker unnoticed. Handling 1 for the
            # rest: their retained messages only for a subscription new to the session.
            granted = await client.subscribe(
                [
                    (
                        f,
                        SubscribeOptions(
                            qos=1,
                            retainAsPublished=True,
                            retainHandling=0 if f in self.resend_retained else 1,
                        ),
                    )
                    for f in filters
                ]
            )
        else:
            granted = await client.subscribe([(f, self.filters.get(f, 1)) for f in filters])
        for topic_filter, code in zip(filters, granted, strict=False):
            value = code if isinstance(code, int) else getattr(code, "value", 0)
            if isinstance(value, int) and value >= 0x80:
                self.refused.add(topic_filter)
                # e.g. an ACL that does not cover the base topic: commands would never
                # arrive, so say so loudly.
                log.error("broker refused a subscription", filter=topic_filter, reason=str(code))
