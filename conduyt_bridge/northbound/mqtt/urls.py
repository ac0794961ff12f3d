"""Broker URLs as they may be shown: with the userinfo (which may hold a password) hidden.

Used wherever a URL reaches a log line or an error message: the `[mqtt] url` check of
the configuration (`docs/architecture.md` §8) and the broker link's log lines
(`docs/deployment.md`).
"""

from __future__ import annotations

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """`url` with its userinfo (which may hold a password) replaced by `***`; everything
    else in a URL is safe to echo back in a log line or an error."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
