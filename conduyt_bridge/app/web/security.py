"""Who may use the web console, and how state-changing requests are protected
(`docs/console.md` §4).

- **Token.** With `[http] token` set (required for any non-loopback `listen`,
  `HttpSection`), every route but `/healthz`, `/readyz`, `/metrics`, `/login` and the
  static assets needs it: as `Authorization: Bearer <token>` (scripts), or typed once into
  the login form, which sets the session cookie (`HttpOnly; SameSite=Strict`, `Secure`
  over TLS). The cookie holds an HMAC of the token, not the token: changing the token ends
  every session. Failed logins are limited per client address (`LoginThrottle`).
- **Host check** (DNS rebinding). Without a token the console answers only requests whose
  `Host` is a loopback name (`localhost`, 127.0.0.0/8, `[::1]`): a web page on another
  site cannot point a DNS name of its own at 127.0.0.1 and read or drive the console.
- **CSRF.** Every POST must carry the `X-CSRF-Token` header equal to the CSRF cookie
  (double submit; the console page receives the value in a `<meta>` element) and, when
  the browser sends `Origin` (or `Sec-Fetch-Site`), come from the console's own origin.
  A request authenticated by a bearer header is exempt: browsers never add that header
  on their own. The login form carries the value as a hidden field instead.
- **Content-Security-Policy** (`CONTENT_SECURITY_POLICY`) on every page: scripts and
  styles from the bridge's own files only, no inline script, no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from aiohttp import web

SESSION_COOKIE = "conduyt_session"
"""The login session cookie (an HMAC of the token)."""

CSRF_COOKIE = "conduyt_csrf"
"""The double-submit CSRF cookie (64 hex digits)."""

CSRF_HEADER = "X-CSRF-Token"
"""The header a state-changing request repeats the CSRF cookie's value in."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The console's pages load only the bridge's own script and style files."""

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Operational endpoints that never need the token (health checks, Prometheus)."""

PUBLIC_PREFIXES = ("/static/",)
"""Static assets hold no board data: served without the token (the login page needs
its style)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

NO_STORE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
"""Headers of every dynamic answer (JSON, metrics, pages): never cached, never sniffed."""

UNAUTHORIZED = (
    "authentication required: send the [http] token as 'Authorization: Bearer <token>' "
    "or log in at /login"
)
CSRF_FAILED = (
    "CSRF check failed: a state-changing request needs the X-CSRF-Token header equal to "
    "the console's conduyt_csrf cookie"
)

_CSRF_VALUE = re.compile(r"[0-9a-f]{64}")
_SESSION_CONTEXT = b"conduyt-bridge console session v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOGIN_FAILURES = 5
"""Failed logins one client address may make per `LOGIN_WINDOW_S`."""

LOGIN_WINDOW_S = 60.0
"""The window of `LOGIN_FAILURES`, s."""

LOGIN_ADDRESSES = 1024
"""Client addresses whose failures are remembered (least recently failed forgotten
first): the memory a flood of addresses can take is bounded."""


class LoginThrottle:
    """Failed logins per client address: at most `failures` in any `window_s`; a
    successful login forgets the address's failures (`docs/console.md` §4)."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        addresses: int = LOGIN_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self.addresses = addresses
        self.clock = clock
        self.recent: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again (0: now)."""
        times = self.recent.get(address)
        if times is None or len(times) < self.failures:
            return 0
        wait = times[0] + self.window_s - self.clock()
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, address: str) -> None:
        """Count one failed login of `address`."""
        times = self.recent.pop(address, None) or deque(maxlen=self.failures)
        times.append(self.clock())
        self.recent[address] = times
        while len(self.recent) > self.addresses:
            self.recent.popitem(last=False)

    def succeeded(self, address: str) -> None:
        """Forget `address`'s failures."""
        self.recent.pop(address, None)


def is_loopback_name(host: str) -> bool:
    """True for `localhost` (and `*.localhost`) and loopback addresses, with or without
    a port (`127.0.0.1:9105`, `[::1]:9105`)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_csrf_value() -> str:
    """A fresh CSRF cookie value (256 random bits, hex)."""
    return secrets.token_hex(32)


def json_error(status: int, error: str, message: str) -> web.Response:
    """`{"ok": false, "error": …, "message": …}` with `status`."""
    headers = dict(NO_STORE_HEADERS)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="conduyt-bridge"'
    doc = {"ok": False, "error": error, "message": message}
    return web.json_response(doc, status=status, headers=headers)


class Guard:
    """The console's access rules for one `[http] token` (empty: none)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.throttle = LoginThrottle()
        self.session_value = (
            hmac.new(token.encode(), _SESSION_CONTEXT, hashlib.sha256).hexdigest() if token else ""
        )

    # ---- checks --------------------------------------------------------------------------

    def token_matches(self, text: str) -> bool:
        """True when `text` is the configured token (constant-time; False without one)."""
        return bool(self.token) and hmac.compare_digest(text.encode(), self.token.encode())

    def by_bearer(self, request: web.Request) -> bool:
        """True when the request carries the right `Authorization: Bearer` token."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def authenticated(self, request: web.Request) -> bool:
        """True without a token, or with the bearer token or a valid session cookie."""
        if not self.token or self.by_bearer(request):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session_value.encode())

    def host_problem(self, request: web.Request) -> str | None:
        """Why the `Host` header is refused (no token and not a loopback name), or None."""
        if self.token:
            return None
        host = request.headers.get("Host", "")
        if is_loopback_name(host):
            return None
        return (
            f"Host {host[:80]!r} refused: without [http] token the console answers only "
            "requests to localhost or a loopback address (DNS rebinding protection)"
        )

    @staticmethod
    def origin_problem(request: web.Request) -> str | None:
        """Why a state-changing request looks cross-site (`Origin` not the console's own,
        or `Sec-Fetch-Site` neither `same-origin` nor `none`), or None."""
        expected = f"{request.scheme}://{request.host}"
        origin = request.headers.get("Origin")
        if origin is not None and origin != expected:
            return f"cross-origin request refused: Origin {origin[:80]!r} is not {expected!r}"
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request refused (Sec-Fetch-Site: {site[:40]})"
        return None

    @staticmethod
    def csrf_matches(request: web.Request, sent: str | None) -> bool:
        """True when `sent` equals the request's CSRF cookie (both well-formed)."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        return (
            sent is not None
            and _CSRF_VALUE.fullmatch(cookie) is not None
            and hmac.compare_digest(sent.encode(), cookie.encode())
        )

    # ---- cookies ---------------------------------------------------------------------------

    @staticmethod
    def csrf_value(request: web.Request) -> tuple[str, bool]:
        """The request's CSRF cookie value, or a new one; True when it is new (set it)."""
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if _CSRF_VALUE.fullmatch(cookie):
            return cookie, False
        return new_csrf_value(), True

    @staticmethod
    def set_cookie(
        response: web.StreamResponse, request: web.Request, name: str, value: str
    ) -> None:
        """Set an `HttpOnly; SameSite=Strict; Path=/` cookie (`Secure` over TLS)."""
        response.set_cookie(
            name, value, httponly=True, samesite="Strict", path="/", secure=request.secure
        )

    # ---- middleware ----------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply the rules of the module docstring before any handler runs."""
        path = request.path
        if path in OPEN_PATHS:
            return await handler(request)
        problem = self.host_problem(request)
        if problem is not None:
            return json_error(403, "host", problem)
        if path == "/login" or path.startswith(PUBLIC_PREFIXES):
            return await handler(request)  # the login handler checks its own CSRF field
        if not self.authenticated(request):
            if request.method in SAFE_METHODS and path == "/":
                raise web.HTTPSeeOther("/login")
            return json_error(401, "unauthorized", UNAUTHORIZED)
        if request.method not in SAFE_METHODS and not self.by_bearer(request):
            problem = self.origin_problem(request)
            if problem is not None:
                return json_error(403, "csrf", problem)
            if not self.csrf_matches(request, request.headers.get(CSRF_HEADER)):
                return json_error(403, "csrf", CSRF_FAILED)
        return await handler(request)


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_COOKIE",
    "CSRF_FAILED",
    "CSRF_HEADER",
    "LOGIN_ADDRESSES",
    "LOGIN_FAILURES",
    "LOGIN_WINDOW_S",
    "NO_STORE_HEADERS",
    "OPEN_PATHS",
    "SESSION_COOKIE",
    "UNAUTHORIZED",
    "Guard",
    "LoginThrottle",
    "is_loopback_name",
    "json_error",
    "new_csrf_value",
]
