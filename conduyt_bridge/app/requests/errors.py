"""The request API's refusal (`docs/requests.md` §2)."""

from __future__ import annotations

__all__ = ["RequestError"]


class RequestError(Exception):
    """A request that cannot be carried out: its message, which says what was wrong and
    what to do, becomes the response's `error`. Nothing was changed."""
