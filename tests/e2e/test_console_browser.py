"""The web console in a real browser (`docs/console.md`): Playwright for Python driving
Debian's Chromium against a bridge with simulated boards and the test broker.

One bridge (in its own thread and event loop, so the synchronous Playwright API can drive
the page from the test's thread) and one browser serve the whole module: a sim
thermostat, a sim kitchen (modules) and a board on a pty whose datastream is named
`<script>`; a second pty board, not configured, is there to be found by a scan.
Skipped, with the reason, without /usr/bin/chromium or Playwright.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support.broker import Broker
from support.harness import make_settings, wait_until
from support.net import free_port
from support.recorder import Recorder

from conduyt_bridge.app.daemon import Bridge
from conduyt_bridge.protocol.constants import DatastreamType
from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.profiles import DatastreamSpec, get_profile
from conduyt_bridge.simulator.ptyboard import PtyBoard

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright (pip install -e '.[test]')"
)
expect = sync_api.expect

T = TypeVar("T")
EXPIRE_ZERO = "invalid device: datastreams.setpoint.expire_after_s: Input should be greater than 0"
OUT_OF_RANGE = (
    "datastream 'setpoint' (FLOAT32): 2000000000.0 is out of range -1000000000..1000000000"
)


class BridgeThread:
    """A Bridge (with a pty board) running on its own event loop in a thread."""

    def __init__(self, broker: Broker, base: str, tmp: Path) -> None:
        self.broker = broker
        self.base = base
        self.tmp = tmp
        self.port = free_port()
        self.config = tmp / "config.toml"
        self.scan_link = tmp / "scan-board"
        self.loop = asyncio.new_event_loop()
        self.bridge: Bridge | None = None
        self._ready: Future[None] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))

    def start(self) -> None:
        self._thread.start()
        self._ready.result(timeout=20)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 15) -> T:
        """Run `fn()` on the bridge's loop and return its result."""

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        evil = replace(
            get_profile("thermostat"),
            datastreams=(
                DatastreamSpec("<script>", DatastreamType.STRING, writable=True),
                DatastreamSpec("<b>bold</b>", DatastreamType.FLOAT32, "<i>"),
            ),
        )
        link = self.tmp / "evil-board"
        try:
            async with (
                PtyBoard(SimulatedBoard(evil, seed=3), link=link),
                PtyBoard(SimulatedBoard(get_profile("thermostat"), seed=4), link=self.scan_link),
            ):
                devices = [
                    {"id": "thermo", "port": "sim://thermostat"},
                    {"id": "kitchen", "port": "sim://kitchen"},
                    {"id": "evil", "port": str(link)},
                ]
                settings = make_settings(
                    self.broker,
                    self.base,
                    devices,
                    http={"listen": f"127.0.0.1:{self.port}"},
                    bridge={"allowed_ports": ["sim://*", str(self.tmp / "scan-*")]},
                )
                self.config.write_text(
                    '# the console\'s test bridge\n[[devices]]\nid = "thermo"\n'
                    'port = "sim://thermostat"\n',
                    encoding="utf-8",
                )
                bridge = Bridge(settings, config_path=self.config)
                self.bridge = bridge
                task = asyncio.create_task(bridge.run())
                await asyncio.wait_for(bridge.mqtt.wait_connected(), 10)
                await wait_until(lambda: all(b.online for b in bridge.boards.values()), 10)
                self._ready.set_result(None)
                await self._stop.wait()
                bridge.stop()
                await asyncio.wait_for(task, 15)
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise


@pytest.fixture(scope="module")
def served(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeThread]:
    running = BridgeThread(broker, f"t-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("ui"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, served: BridgeThread) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(served.url)
    expect(page.get_by_role("status").filter(has_text="live")).to_be_visible()
    yield page
    context.close()
    assert dialogs == []  # no script from a board ever ran


def test_a_live_value_changes_without_reloading(page: Any) -> None:
    board = page.get_by_role("region", name="thermo")
    cell = board.get_by_role("row", name="humidity").get_by_role("cell").first
    shape = re.compile(r"^[0-9.]+ %$")
    expect(cell).to_have_text(shape)
    before = cell.text_content()
    expect(cell).not_to_have_text(before)  # pushed by the board, over the event stream
    assert shape.match(cell.text_content())


def test_setting_a_datastream_reaches_the_board_and_mqtt(page: Any, served: BridgeThread) -> None:
    board = page.get_by_role("region", name="thermo")
    topic = f"{served.base}/thermo/ds/setpoint_celsius"

    async def wait_state() -> tuple[bytes, bool]:
        async with Recorder(served.broker, topic) as rec:
            msg = await rec.wait_for(topic, payload=b"23.5")
            return msg.payload, msg.retain

    setpoint = board.get_by_role("spinbutton", name="setpoint")
    expect(setpoint).to_have_attribute("min", "-1000000000")
    setpoint.fill("23.5")
    board.get_by_role("button", name="set setpoint").click()
    expect(board.get_by_role("row", name="setpoint").get_by_role("cell").first).to_have_text(
        "23.5 °C"
    )
    assert served.call(wait_state) == (b"23.5", True)
    assert served.bridge is not None
    assert served.bridge.boards["thermo"].values["setpoint_celsius"] == 23.5

    heater = board.get_by_role("switch", name="heater")
    heater.check()
    expect(board.get_by_role("row", name="heater").get_by_role("cell").first).to_have_text("true")


def test_an_out_of_range_value_shows_the_bridges_message(page: Any, served: BridgeThread) -> None:
    board = page.get_by_role("region", name="thermo")
    setpoint = board.get_by_role("spinbutton", name="setpoint")
    setpoint.fill("2e9")
    board.get_by_role("button", name="set setpoint").click()
    alert = board.get_by_role("alert")
    expect(alert).to_have_text(OUT_OF_RANGE)
    assert alert.get_attribute("id") == setpoint.get_attribute("aria-describedby")
    errors = board.get_by_role("list", name="recent errors of thermo")
    expect(errors.get_by_role("listitem").first).to_contain_text(f"OUT_OF_RANGE: {OUT_OF_RANGE}")


def test_controls_are_named_after_what_they_control(page: Any) -> None:
    thermo = page.get_by_role("region", name="thermo")
    thermo.get_by_text("Pins (8)").click()
    mode = thermo.get_by_role("combobox", name="pin 2 mode")
    expect(mode.get_by_role("option")).to_have_text(
        ["(not set)", "input", "output", "pwm", "input_pullup"]
    )
    mode.select_option("output")
    thermo.get_by_role("spinbutton", name="pin 2 value").fill("300")
    thermo.get_by_role("button", name="set pin 2").click()
    expect(thermo.get_by_role("alert")).to_have_text(
        "pin 2 is in output mode and takes 0 or 1, got 300; set mode pwm for a duty cycle 0..255"
    )
    expect(thermo.get_by_role("combobox", name="pin 4 subscribe")).to_be_visible()
    expect(thermo.get_by_role("button", name="read pin 4")).to_be_visible()

    kitchen = page.get_by_role("region", name="kitchen")
    kitchen.get_by_text("Modules (").click()
    angle = kitchen.get_by_role("spinbutton", name="servo write angle", exact=True)
    expect(angle).to_have_attribute("max", "180")
    angle.fill("200")
    kitchen.get_by_role("button", name="run servo write", exact=True).click()
    expect(kitchen.get_by_role("alert")).to_have_text(
        "servo.write: angle must be an integer 0..180, got 200"
    )


def test_board_values_render_as_text(page: Any) -> None:
    evil = page.get_by_role("region", name="evil")
    expect(evil.get_by_role("rowheader", name="<script>")).to_have_text("<script>")
    expect(evil.get_by_role("textbox", name="<script>")).to_be_visible()
    expect(evil.get_by_role("rowheader", name="<b>bold</b>")).to_have_text("<b>bold</b>")
    assert page.locator("b", has_text="bold").count() == 0
    assert page.locator("script:not([src])").count() == 0
    evil.get_by_role("textbox", name="<script>").fill("<img src=x onerror=alert(1)>")
    evil.get_by_role("button", name="set <script>").click()
    expect(evil.get_by_role("row", name="<script>").get_by_role("cell").first).to_have_text(
        "<img src=x onerror=alert(1)>"
    )
    assert page.locator("img").count() == 0


def test_add_a_simulated_board_then_remove_it(page: Any, served: BridgeThread) -> None:
    page.get_by_role("textbox", name="new board id").fill("extra")
    page.get_by_role("textbox", name="new board port").fill("sim://thermostat")
    page.get_by_role("button", name="Add board").click()
    extra = page.get_by_role("region", name="extra")
    expect(extra.get_by_text("online", exact=True)).to_be_visible()
    expect(extra.get_by_role("spinbutton", name="setpoint")).to_be_visible()
    assert 'port = "sim://thermostat"' in served.config.read_text(encoding="utf-8")
    assert "# the console's test bridge" in served.config.read_text(encoding="utf-8")

    extra.get_by_text("Manage").click()
    extra.get_by_role("button", name="remove extra").click()
    extra.get_by_role("button", name="confirm remove extra").click()
    expect(page.get_by_role("region", name="extra")).to_have_count(0)
    bridge = served.bridge
    assert bridge is not None

    def removed() -> bool:  # the page drops the card as the board stops, before the save
        return "extra" not in bridge.boards and 'id = "extra"' not in served.config.read_text(
            encoding="utf-8"
        )

    served.call(lambda: wait_until(removed, 10))


def test_scan_a_port_then_add_the_board_it_found(page: Any, served: BridgeThread) -> None:
    manage = page.get_by_role("region", name="Add a board")
    message = page.locator("#manage-message")
    manage.get_by_role("textbox", name="ports to scan").fill("/etc/passwd")
    manage.get_by_role("button", name="Scan", exact=True).click()
    expect(message).to_have_text(
        f"port '/etc/passwd' is not allowed: [bridge] allowed_ports permits 'sim://*', "
        f"'{served.tmp}/scan-*'"
    )
    expect(message).to_have_attribute("role", "alert")

    link = str(served.scan_link)
    manage.get_by_role("textbox", name="ports to scan").fill(link)
    manage.get_by_role("button", name="Scan", exact=True).click()
    results = manage.get_by_role("list", name="scan results")
    expect(results.get_by_role("listitem")).to_have_count(1)
    expect(results.get_by_role("listitem")).to_contain_text("sim-thermostat 1.2.0 · mcu ")
    expect(results.get_by_role("listitem")).to_contain_text(
        "8 pins · temperature, humidity, setpoint, heater"
    )
    results.get_by_role("button", name=f"add {link}").click()
    expect(message).to_have_text("added scan-board")
    found = page.get_by_role("region", name="scan-board")
    expect(found.get_by_text("online", exact=True)).to_be_visible()
    assert f'port = "{link}"' in served.config.read_text(encoding="utf-8")

    async def remove() -> Any:
        assert served.bridge is not None
        return (await served.bridge.requests.handle("device/remove", {"id": "scan-board"})).status

    assert served.call(remove) == "ok"
    expect(page.get_by_role("region", name="scan-board")).to_have_count(0)


def test_the_options_form_changes_the_devices_entry(page: Any, served: BridgeThread) -> None:
    import tomllib

    thermo = page.get_by_role("region", name="thermo")
    thermo.get_by_text("Manage").click()
    form = thermo.get_by_role("form", name="options of thermo")
    expect(form.get_by_role("switch", name="read_only for thermo")).not_to_be_checked()
    expect(form.get_by_role("switch", name="allow_raw for thermo")).to_be_checked()
    form.get_by_role("spinbutton", name="setpoint expire_after_s").fill("0")
    form.get_by_role("button", name="save options for thermo").click()
    expect(thermo.get_by_role("alert")).to_have_text(EXPIRE_ZERO)
    assert "datastreams" not in served.config.read_text(encoding="utf-8")

    form.get_by_role("textbox", name="setpoint name", exact=True).fill("Target temperature")
    form.get_by_role("spinbutton", name="setpoint expire_after_s").fill("120")
    form.get_by_role("combobox", name="pin 4 subscription").select_option("change")
    form.get_by_role("spinbutton", name="pin 4 interval_ms").fill("50")
    form.get_by_role("button", name="save options for thermo").click()
    # The board restarts with its new options, then the file is saved; its card is drawn
    # again (as it restarts and as it comes online), which closes an open section: open it
    # until the card shows the new values.
    deadline = time.monotonic() + 10
    while "datastreams" not in served.config.read_text(encoding="utf-8"):
        assert time.monotonic() < deadline, "the options were never saved to the file"
        time.sleep(0.05)
    name_box = form.get_by_role("textbox", name="setpoint name", exact=True)
    subscription = form.get_by_role("combobox", name="pin 4 subscription")
    deadline = time.monotonic() + 10
    while True:
        if not name_box.is_visible():
            thermo.get_by_text("Manage").click()
        try:
            expect(name_box).to_have_value("Target temperature", timeout=1000)
            expect(subscription).to_have_value("change", timeout=1000)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    [entry] = tomllib.loads(served.config.read_text(encoding="utf-8"))["devices"]
    assert entry["datastreams"] == {
        "setpoint": {"name": "Target temperature", "expire_after_s": 120}
    }
    assert entry["pins"] == [{"pin": 4, "mode": "change", "interval_ms": 50}]
    assert served.bridge is not None
    config = served.bridge.boards["thermo"].config
    assert [(p.pin, p.mode, p.interval_ms, p.threshold) for p in config.pins] == [
        (4, "change", 50, 0)
    ]

    async def restore() -> Any:
        assert served.bridge is not None
        options = {"datastreams": None, "pins": None}
        request = {"id": "thermo", "options": options}
        return (await served.bridge.requests.handle("device/options", request)).status

    assert served.call(restore) == "ok"
    expect(thermo.get_by_text("online", exact=True)).to_be_visible()
