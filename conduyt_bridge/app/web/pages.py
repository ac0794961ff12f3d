"""The console's two HTML pages and the login form (`docs/console.md` §4).

Both pages are static files under `static/` with one placeholder each for values the
server fills in, HTML-escaped: `{{csrf}}` (the CSRF cookie's value, for the page's script
or the login form's hidden field) and, on the login page, `{{message}}`. Everything a
board reports is rendered by the browser with `textContent`, never by the server into
HTML.
"""

from __future__ import annotations

import html
from importlib import resources

from aiohttp import web

from conduyt_bridge.app.web.security import (
    CONTENT_SECURITY_POLICY,
    CSRF_COOKIE,
    NO_STORE_HEADERS,
    SESSION_COOKIE,
    Guard,
)

PAGE_HEADERS = {
    **NO_STORE_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
}
"""Headers of every HTML page."""

WRONG_TOKEN = "Wrong token."
TOO_MANY = "Too many failed logins from this address: try again in {seconds} s."
FORM_TOO_LONG = "The form is too long."
LOGIN_CSRF = "The form expired: reload the page and try again."
MAX_FORM_BYTES = 4096
"""Longest login form accepted (bytes)."""


def static_text(name: str) -> str:
    """A text file of the console's `static/` folder."""
    return (resources.files("conduyt_bridge.app.web") / "static" / name).read_text("utf-8")


class Pages:
    """Renders the console page and runs the login form."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.index_template = static_text("index.html")
        self.login_template = static_text("login.html")

    def _page(
        self,
        request: web.Request,
        template: str,
        message: str = "",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        csrf, new = self.guard.csrf_value(request)
        body = template.replace("{{csrf}}", html.escape(csrf)).replace(
            "{{message}}", html.escape(message)
        )
        response = web.Response(
            text=body,
            content_type="text/html",
            status=status,
            headers={**PAGE_HEADERS, **(headers or {})},
        )
        if new:
            self.guard.set_cookie(response, request, CSRF_COOKIE, csrf)
        return response

    async def index(self, request: web.Request) -> web.Response:
        """`GET /`: the console (its script renders everything from `/api/events`)."""
        return self._page(request, self.index_template)

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        """`GET /login`: the form (straight to the console when no token is needed)."""
        if not self.guard.token:
            raise web.HTTPSeeOther("/")
        return self._page(request, self.login_template)

    async def login(self, request: web.Request) -> web.StreamResponse:
        """`POST /login` (form: `token`, `csrf`): sets the session cookie and goes to the
        console; a wrong token or a failed CSRF or origin check shows the form again with
        the reason (401 or 403); a client address with too many failed logins gets 429
        with `Retry-After` whatever it sends (`security.LoginThrottle`)."""
        if not self.guard.token:
            raise web.HTTPSeeOther("/")
        problem = self.guard.origin_problem(request)
        if problem is not None:
            return self._page(request, self.login_template, problem, status=403)
        address = request.remote or ""
        wait = self.guard.throttle.retry_after(address)
        if wait:
            message = TOO_MANY.format(seconds=wait)
            retry = {"Retry-After": str(wait)}
            return self._page(request, self.login_template, message, 429, retry)
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            return self._page(request, self.login_template, FORM_TOO_LONG, status=413)
        form = await request.post()
        csrf = form.get("csrf")
        if not self.guard.csrf_matches(request, csrf if isinstance(csrf, str) else None):
            return self._page(request, self.login_template, LOGIN_CSRF, status=403)
        token = form.get("token")
        if not isinstance(token, str) or not self.guard.token_matches(token.strip()):
            self.guard.throttle.failed(address)
            return self._page(request, self.login_template, WRONG_TOKEN, status=401)
        self.guard.throttle.succeeded(address)
        response = web.HTTPSeeOther("/")
        self.guard.set_cookie(response, request, SESSION_COOKIE, self.guard.session_value)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        """`POST /logout` (CSRF-checked like every POST): ends the browser's session."""
        response = web.HTTPSeeOther("/login" if self.guard.token else "/")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response


__all__ = [
    "FORM_TOO_LONG",
    "LOGIN_CSRF",
    "PAGE_HEADERS",
    "TOO_MANY",
    "WRONG_TOKEN",
    "Pages",
    "static_text",
]
