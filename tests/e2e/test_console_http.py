"""The web console's HTTP side without a browser (`conduyt_bridge/app/web/`,
`docs/console.md`): the token and the login cookie, the Host check, CSRF, hostile request
bodies, console commands running on the MQTT command path, the event stream, and the
`[http] token` config rule. Against a real bridge with simulated boards and the test
broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.broker import Broker
from support.harness import make_settings, running_bridge, wait_until
from support.net import free_port
from support.recorder import Recorder

from conduyt_bridge.app.config import ConfigError, load_settings
from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.app.http import status_server
from conduyt_bridge.app.web.live import CLIENT_QUEUE_BYTES, Client
from conduyt_bridge.app.web.security import (
    CONTENT_SECURITY_POLICY,
    CSRF_FAILED,
    LOGIN_FAILURES,
    LOGIN_WINDOW_S,
    UNAUTHORIZED,
    Guard,
    LoginThrottle,
)

TOKEN = "correct-horse-battery-staple"
OUT_OF_RANGE = (
    "datastream 'setpoint' (FLOAT32): 2000000000.0 is out of range -1000000000..1000000000"
)
CSRF = "ab" * 32


@contextlib.asynccontextmanager
async def served(broker: Broker, base_topic: str, **http: Any) -> AsyncIterator[tuple[Bridge, str]]:
    """A running bridge with one sim thermostat online and its HTTP base URL."""
    port = free_port()
    settings = make_settings(
        broker,
        base_topic,
        [{"id": "thermo", "port": "sim://thermostat"}],
        http={"listen": f"127.0.0.1:{port}", **http},
    )
    async with running_bridge(settings) as bridge:
        await wait_until(lambda: bridge.boards["thermo"].online)
        url = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(5):
            while True:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield bridge, url


def session(**cookies: str) -> aiohttp.ClientSession:
    """A client session with `cookies` for 127.0.0.1 (the jar keeps what the server sets)."""
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: cookies for an IP address host
    client = aiohttp.ClientSession(cookie_jar=jar)
    if cookies:
        jar.update_cookies(cookies, aiohttp.client.URL("http://127.0.0.1/"))
    return client


async def post_command(
    client: aiohttp.ClientSession, url: str, body: Any, *, raw: bytes | None = None, **headers: str
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    async with client.post(
        f"{url}/api/boards/thermo/command",
        data=data,
        headers={"Content-Type": "application/json", **headers},
    ) as r:
        return r.status, await r.json()


# ---- config ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http", "reason"),
    [
        (
            'listen = "0.0.0.0:9105"',
            "listen address '0.0.0.0' is reachable from other hosts: set [http] token (or "
            "listen on 127.0.0.1)",
        ),
        (
            'listen = ":9105"',
            "listen address 'all interfaces' is reachable from other hosts: set [http] "
            "token (or listen on 127.0.0.1)",
        ),
        (
            'listen = "127.0.0.1:9105"\ntoken = "short"',
            "must be at least 16 characters (e.g. the output of `openssl rand -hex 16`)",
        ),
    ],
)
def test_a_reachable_listen_address_needs_a_token(tmp_path: Path, http: str, reason: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[http]\n{http}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.errors == [("http.token", reason)]


@pytest.mark.parametrize("listen", ["127.0.0.1:9105", "[::1]:9105", "localhost:9105"])
def test_loopback_needs_no_token(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[http]\nlisten = "{listen}"\n', encoding="utf-8")
    assert load_settings(path, env={}).http.token.get_secret_value() == ""


def test_a_token_allows_any_address_and_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[http]\nlisten = "0.0.0.0:9105"\ntoken = "{TOKEN}"\n', encoding="utf-8")
    settings = load_settings(path, env={})
    assert settings.http.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)


# ---- token and login ------------------------------------------------------------------------


async def test_token_bearer_login_cookie_and_open_endpoints(
    mqtt_broker: Broker, base_topic: str
) -> None:
    async with served(mqtt_broker, base_topic, token=TOKEN) as (_, url), session() as client:
        for path in ("/healthz", "/readyz", "/metrics", "/static/console.js"):
            async with client.get(url + path) as r:
                assert r.status == 200, path
        async with client.get(url + "/", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/login")
        for path in ("/api/console", "/api/status", "/api/events"):
            async with client.get(url + path) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"] == 'Bearer realm="conduyt-bridge"'
                assert await r.json() == {
                    "ok": False,
                    "error": "unauthorized",
                    "message": UNAUTHORIZED,
                }
        for wrong in (f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}"):
            async with client.get(url + "/api/console", headers={"Authorization": wrong}) as r:
                assert r.status == 401, wrong
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with client.get(url + "/api/console", headers=bearer) as r:
            assert r.status == 200
            assert [b["id"] for b in (await r.json())["boards"]] == ["thermo"]

        # The login form: its CSRF field must match the cookie the form page set.
        async with client.get(url + "/login") as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            page = await r.text()
        csrf = client.cookie_jar.filter_cookies(aiohttp.client.URL(url))["conduyt_csrf"].value
        assert f'name="csrf" value="{csrf}"' in page
        async with client.post(url + "/login", data={"token": "nope", "csrf": csrf}) as r:
            assert r.status == 401
            assert '<p class="msg error" role="alert">Wrong token.</p>' in await r.text()
        async with client.post(url + "/login", data={"token": TOKEN, "csrf": "f" * 64}) as r:
            assert r.status == 403
            assert "The form expired: reload the page and try again." in await r.text()
        async with client.post(
            url + "/login",
            data={"token": TOKEN, "csrf": csrf},
            headers={"Origin": "http://evil.example"},
        ) as r:
            assert r.status == 403
            assert "cross-origin request refused: Origin &#x27;http://evil.example&#x27;" in (
                await r.text()
            )
        async with client.post(
            url + "/login", data={"token": TOKEN, "csrf": csrf}, allow_redirects=False
        ) as r:
            assert (r.status, r.headers["Location"]) == (303, "/")
            cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("conduyt_session=")
        assert TOKEN not in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        async with client.get(url + "/api/console") as r:
            assert r.status == 200  # the session cookie now
        async with client.get(url + "/") as r:
            assert r.status == 200
            assert f'<meta name="csrf-token" content="{csrf}">' in await r.text()
        async with client.post(
            url + "/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False
        ) as r:
            assert (r.status, r.headers["Location"]) == (303, "/login")
        async with client.get(url + "/api/console") as r:
            assert r.status == 401


async def test_pages_and_host_names_without_a_token(mqtt_broker: Broker, base_topic: str) -> None:
    async with served(mqtt_broker, base_topic) as (_, url), session() as client:
        async with client.get(url + "/login", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/")
        for host in ("localhost:1", "127.0.0.1", "[::1]:80", "app.localhost"):
            async with client.get(url + "/api/console", headers={"Host": host}) as r:
                assert r.status == 200, host
        async with client.get(url + "/api/console", headers={"Host": "rebind.evil.example"}) as r:
            assert r.status == 403
            assert await r.json() == {
                "ok": False,
                "error": "host",
                "message": "Host 'rebind.evil.example' refused: without [http] token the "
                "console answers only requests to localhost or a loopback address (DNS "
                "rebinding protection)",
            }
        async with client.get(url + "/healthz", headers={"Host": "rebind.evil.example"}) as r:
            assert r.status == 200  # health checks are not the console
        async with client.get(url + "/") as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert r.headers["Cache-Control"] == "no-store"
            page = await r.text()
            cookie = r.headers["Set-Cookie"]
        assert "<script>" not in page  # no inline script: the CSP allows none
        assert '<script type="module" src="/static/console.js"></script>' in page
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        for name in ("console.js", "board.js", "controls.js", "dom.js"):
            async with client.get(f"{url}/static/{name}") as r:
                assert r.status == 200
                assert r.content_type in ("application/javascript", "text/javascript")
                assert "innerHTML" not in await r.text()
        async with client.get(url + "/static/../http.py") as r:
            assert r.status in (403, 404)


# ---- CSRF ----------------------------------------------------------------------------------


async def test_state_changing_requests_need_the_csrf_header_and_same_origin(
    mqtt_broker: Broker, base_topic: str
) -> None:
    body = {"command": "ds/setpoint_celsius/set", "payload": "22"}
    async with served(mqtt_broker, base_topic) as (bridge, url):
        board = bridge.boards["thermo"]
        async with session() as client:  # no cookie at all
            assert await post_command(client, url, body, **{"X-CSRF-Token": CSRF}) == (
                403,
                {"ok": False, "error": "csrf", "message": CSRF_FAILED},
            )
        async with session(conduyt_csrf=CSRF) as client:
            assert (await post_command(client, url, body))[0] == 403  # no header
            wrong = {"X-CSRF-Token": "cd" * 32}
            assert (await post_command(client, url, body, **wrong))[0] == 403
            good = {"X-CSRF-Token": CSRF}
            status, doc = await post_command(
                client, url, body, Origin="http://evil.example", **good
            )
            assert (status, doc["message"]) == (
                403,
                f"cross-origin request refused: Origin 'http://evil.example' is not '{url}'",
            )
            status, doc = await post_command(
                client, url, body, **{"Sec-Fetch-Site": "cross-site"}, **good
            )
            assert (status, doc["message"]) == (
                403,
                "cross-site request refused (Sec-Fetch-Site: cross-site)",
            )
            async with client.post(f"{url}/api/requests/scan", json={}) as r:
                assert r.status == 403  # the request API too
            assert "setpoint_celsius" not in board.values  # nothing was sent
            status, doc = await post_command(
                client, url, body, Origin=url, **{"Sec-Fetch-Site": "same-origin"}, **good
            )
            assert (status, doc) == (200, {"ok": True, "value": 22.0})


async def test_a_bearer_token_needs_no_csrf_header(mqtt_broker: Broker, base_topic: str) -> None:
    body = {"command": "ds/setpoint_celsius/set", "payload": "19.5"}
    async with served(mqtt_broker, base_topic, token=TOKEN) as (_, url), session() as client:
        assert await post_command(client, url, body, Authorization=f"Bearer {TOKEN}") == (
            200,
            {"ok": True, "value": 19.5},
        )
        # The session cookie is what a browser sends by itself: it needs the CSRF header.
        async with session(conduyt_session="0" * 64, conduyt_csrf=CSRF) as cookie_client:
            assert (await post_command(cookie_client, url, body))[0] == 401


# ---- commands ---------------------------------------------------------------------------------


async def test_console_commands_take_the_mqtt_command_path(
    mqtt_broker: Broker, base_topic: str
) -> None:
    good = {"X-CSRF-Token": CSRF}
    async with (
        served(mqtt_broker, base_topic) as (bridge, url),
        Recorder(mqtt_broker, f"{base_topic}/thermo/#") as rec,
        session(conduyt_csrf=CSRF) as client,
    ):
        board = bridge.boards["thermo"]
        state = f"{base_topic}/thermo/ds/setpoint_celsius"
        body = {"command": "ds/setpoint_celsius/set", "payload": "23.5"}
        assert await post_command(client, url, body, **good) == (200, {"ok": True, "value": 23.5})
        msg = await rec.wait_for(state, payload=b"23.5")
        assert msg.retain is True

        body["payload"] = "2e9"
        report = {
            "topic": f"{state}/set",
            "error": "capability",
            "code": None,
            "name": "OUT_OF_RANGE",
            "message": OUT_OF_RANGE,
        }
        status, doc = await post_command(client, url, body, **good)
        assert (status, doc) == (422, {"ok": False, **report})
        error = await rec.wait_for(f"{base_topic}/thermo/error")
        assert error.json() == report
        assert {k: v for k, v in board.errors[-1].items() if k != "ts"} == report

        # The pin and module paths of the same layout, with its own messages.
        status, doc = await post_command(
            client, url, {"command": "pin/99/mode/set", "payload": "output"}, **good
        )
        assert (status, doc["name"]) == (422, "INVALID_PIN")
        status, doc = await post_command(
            client, url, {"command": "pin/2/mode/set", "payload": "output"}, **good
        )
        assert (status, doc) == (200, {"ok": True, "pin": 2, "mode": "output"})
        status, doc = await post_command(
            client, url, {"command": "module/servo/write", "payload": "90"}, **good
        )
        assert (status, doc["name"], doc["message"]) == (
            422,
            "MODULE_NOT_LOADED",
            "module 'servo' is not loaded on board 'thermo' (modules: none)",
        )


HOSTILE_BODIES = [
    (b"\xff\xfe", 400, "request body is not UTF-8 text"),
    (b"{" * 40 + b"}" * 40, 400, "request body nests JSON arrays/objects more than 32 levels deep"),
    (b"[1]", 400, "request body must be a JSON object"),
    (b"nope", 400, "request body is not JSON"),
    (b"x" * (512 * 1024 + 1), 413, "request body is longer than 524288 bytes"),
    (
        b'{"command": "ds/x/set", "extra": 1}',
        400,
        "unknown member 'extra' (expected command, payload or payload_hex)",
    ),
    (
        b'{"payload": "1"}',
        400,
        '"command" must be a command topic below the board, e.g. "ds/setpoint/set"',
    ),
    (
        b'{"command": "cmd", "payload_hex": "zz"}',
        400,
        '"payload_hex" must be hex digits (pairs, spaces allowed)',
    ),
    (
        b'{"command": "cmd", "payload": "", "payload_hex": ""}',
        400,
        'give either "payload" or "payload_hex", not both',
    ),
    (
        b'{"command": "ds/x/set", "payload": 1}',
        400,
        '"payload" must be text: what an MQTT client would publish',
    ),
    (
        b'{"command": "status", "payload": "1"}',
        400,
        "'status' is not a command topic of the Conduyt layout (docs/topics.md §4: "
        "ds/{slug}/set, pin/{n}/set, pin/{n}/mode/set, pin/{n}/get, pin/{n}/subscribe/set, "
        "module/{mod}/{command}, cmd)",
    ),
]
"""Request bodies and what the console answers: status and exact message."""


async def test_hostile_command_bodies_are_refused_plainly(
    mqtt_broker: Broker, base_topic: str
) -> None:
    async with (
        served(mqtt_broker, base_topic) as (bridge, url),
        session(conduyt_csrf=CSRF) as client,
    ):
        for raw, status, message in HOSTILE_BODIES:
            got, doc = await post_command(client, url, None, raw=raw, **{"X-CSRF-Token": CSRF})
            assert (got, doc["ok"], doc["message"]) == (status, False, message), raw[:40]
        assert not bridge.boards["thermo"].errors  # none reached the board's worker
        good = {"X-CSRF-Token": CSRF, "Content-Type": "application/json"}
        async with client.post(
            f"{url}/api/boards/ghost/command",
            data=json.dumps({"command": "ds/a/set", "payload": "1"}),
            headers=good,
        ) as r:
            assert r.status == 404
            assert await r.json() == {
                "ok": False,
                "error": "unknown_board",
                "message": "board 'ghost' does not exist",
            }
        big = {"command": "ds/setpoint_celsius/set", "payload": "1" * 5000}
        status, doc = await post_command(client, url, big, **{"X-CSRF-Token": CSRF})
        assert (status, doc["name"], doc["message"]) == (
            422,
            "PAYLOAD_TOO_LONG",
            "payload of 5000 bytes is longer than any command for board 'thermo' can be "
            "(4096 bytes at most)",
        )


# ---- pages, events, request API -----------------------------------------------------------------


async def test_event_stream_starts_with_the_state_then_pushes_values(
    mqtt_broker: Broker, base_topic: str
) -> None:
    async with (
        served(mqtt_broker, base_topic) as (_, url),
        session() as client,
        client.get(url + "/api/events") as r,
    ):
        assert r.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        events: list[tuple[str, Any]] = []
        name = None
        async with asyncio.timeout(5):
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name or "", json.loads(line[6:])))
                    if name == "values":
                        break
        kind, state = events[0]
        assert kind == "state"
        [board] = state["boards"]
        assert board["id"] == "thermo"
        setpoint = next(d for d in board["datastreams"] if d["slug"] == "setpoint_celsius")
        assert (setpoint["control"], setpoint["min"], setpoint["max"], setpoint["step"]) == (
            "number",
            -1e9,
            1e9,
            "any",
        )
        assert [p["pin"] for p in board["pins"]] == list(range(8))
        assert board["pins"][4]["subscribe_modes"] == ["change", "rising", "falling", "analog_poll"]
        assert {"crc_errors", "framing_errors"} <= board["counters"].keys()
        kind, values = events[-1]
        assert kind == "values"
        assert {u["slug"] for u in values["ds"]} <= {"temperature_celsius", "humidity_percent"}


async def test_request_api_route_answers_like_the_request_api(
    mqtt_broker: Broker, base_topic: str
) -> None:
    async with (
        served(mqtt_broker, base_topic) as (bridge, url),
        session(conduyt_csrf=CSRF) as client,
        client.post(
            f"{url}/api/requests/device/remove",
            json={"id": "ghost"},
            headers={"X-CSRF-Token": CSRF},
        ) as r,
    ):
        assert r.status == 200
        doc = await r.json()
        assert doc["status"] == "error"
        assert doc == (await bridge.requests.handle("device/remove", {"id": "ghost"})).to_json()


# ---- login throttle, session cookie, event stream lifetime ----------------------------------


async def login(client: aiohttp.ClientSession, url: str, token: str) -> tuple[int, str]:
    async with client.get(url + "/login") as r:
        assert r.status == 200
    csrf = client.cookie_jar.filter_cookies(aiohttp.client.URL(url))["conduyt_csrf"].value
    async with client.post(
        url + "/login", data={"token": token, "csrf": csrf}, allow_redirects=False
    ) as r:
        return r.status, await r.text()


async def test_failed_logins_are_limited_per_client_address(
    mqtt_broker: Broker, base_topic: str
) -> None:
    async with served(mqtt_broker, base_topic, token=TOKEN) as (_, url), session() as client:
        assert (await login(client, url, "nope-1"))[0] == 401
        assert (await login(client, url, TOKEN))[0] == 303  # a success forgets the failures
        for attempt in range(LOGIN_FAILURES):
            assert (await login(client, url, f"nope-{attempt}"))[0] == 401
        async with client.get(url + "/login") as r:
            assert r.status == 200
        csrf = client.cookie_jar.filter_cookies(aiohttp.client.URL(url))["conduyt_csrf"].value
        async with client.post(
            url + "/login", data={"token": TOKEN, "csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 429  # even the right token, until the window has passed
            wait = int(r.headers["Retry-After"])
            assert 0 < wait <= LOGIN_WINDOW_S
            text = await r.text()
        message = f"Too many failed logins from this address: try again in {wait} s."
        assert f'<p class="msg error" role="alert">{message}</p>' in text
        async with client.post(
            url + "/login", data={"token": "x" * 5000, "csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 429  # the throttle answers before the body is read
        # The bearer token (scripts) is not throttled by the login form's failures.
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with client.get(url + "/api/console", headers=bearer) as r:
            assert r.status == 200


def test_login_throttle_forgets_old_failures_and_bounds_its_memory() -> None:
    now = [100.0]
    throttle = LoginThrottle(failures=2, window_s=10.0, addresses=3, clock=lambda: now[0])
    throttle.failed("a")
    assert throttle.retry_after("a") == 0
    now[0] = 101.5
    throttle.failed("a")
    assert throttle.retry_after("a") == 9  # until the oldest failure leaves the window
    now[0] = 110.0
    assert throttle.retry_after("a") == 0
    for address in ("b", "c", "d"):
        throttle.failed(address)
    assert list(throttle.recent) == ["b", "c", "d"]  # "a", least recently failed, forgotten
    throttle.succeeded("c")
    assert list(throttle.recent) == ["b", "d"]


async def test_a_new_token_ends_the_sessions_of_the_old_one(
    mqtt_broker: Broker, base_topic: str
) -> None:
    old = Guard("an-older-token-of-this-bridge").session_value
    assert old != Guard(TOKEN).session_value
    assert TOKEN not in Guard(TOKEN).session_value
    async with served(mqtt_broker, base_topic, token=TOKEN) as (_, url):
        async with session(conduyt_session=old) as client, client.get(url + "/api/console") as r:
            assert r.status == 401
        current = Guard(TOKEN).session_value
        async with (
            session(conduyt_session=current) as client,
            client.get(url + "/api/console") as r,
        ):
            assert r.status == 200


async def test_event_streams_are_forgotten_when_the_browser_goes_away(
    mqtt_broker: Broker, base_topic: str
) -> None:
    async with served(mqtt_broker, base_topic) as (bridge, url):
        server = status_server(bridge)
        assert server is not None
        for _ in range(20):
            async with aiohttp.ClientSession() as client, client.get(url + "/api/events") as r:
                assert (await r.content.readline()) == b"event: state\n"
                assert len(server.hub.clients) == 1
            # the connection is closed here, with no further write from the server
            await wait_until(lambda: not server.hub.clients)
        async with aiohttp.ClientSession() as client:
            streams = [await client.get(url + "/api/events") for _ in range(5)]
            for r in streams:
                assert (await r.content.readline()) == b"event: state\n"
            assert len(server.hub.clients) == 5
            for r in streams:
                r.close()
        await wait_until(lambda: not server.hub.clients)


def test_a_stream_that_falls_behind_is_closed_within_its_byte_budget() -> None:
    client = Client()
    big = "x" * (CLIENT_QUEUE_BYTES // 2)
    client.put(big)  # the first message always fits
    client.put("y" * 100)
    assert (len(client.queue), client.queued, client.closed) == (2, len(big) + 100, False)
    client.put(big)  # over the budget: closed, its queue freed
    assert (len(client.queue), client.queued, client.closed) == (0, 0, True)
    client.put("z")
    assert not client.queue
