"""More of the web console in a real browser (`docs/console.md`): what issue 12 asks of
each card that `test_console_browser.py` leaves out (firmware and link counters, the raw
packet console of an `allow_raw` board, the log list) and renaming a board from its card
through the request API. Same bridge and browser set-up as `test_console_browser.py`
(imported from it; skipped with the same reasons without Chromium or Playwright)."""

from __future__ import annotations

import re
from typing import Any

from support.harness import wait_until
from test_console_browser import BridgeThread, browser, expect, page, served

from conduyt_bridge.device.transports import SimTransport
from conduyt_bridge.protocol.constants import PacketType
from conduyt_bridge.protocol.packet import encode_packet

__all__ = ["browser", "page", "served"]  # the fixtures, re-used in this module


def test_a_card_shows_firmware_counters_and_log(page: Any) -> None:
    thermo = page.get_by_role("region", name="thermo")
    expect(
        thermo.get_by_text(re.compile(r"^sim-thermostat 1\.2\.0 · sim://thermostat · mcu "))
    ).to_have_text(re.compile(r" · 8 pins$"))
    counters = thermo.get_by_label("link counters of thermo")
    expect(counters).to_contain_text(re.compile(r"packets in \d+.*CRC errors 0"))
    expect(thermo.get_by_role("list", name="log of thermo")).to_be_attached()


def test_a_line_the_sketch_prints_appears_in_the_log(page: Any, served: BridgeThread) -> None:
    """Text between frames (`docs/serial-text.md`) reaches the card's log live, as text."""
    assert served.bridge is not None
    transport = served.bridge.sessions["thermo"].transport
    assert isinstance(transport, SimTransport)
    line = "debug: <b>heater</b> duty 40 %"
    served.loop.call_soon_threadsafe(
        lambda: setattr(transport.board.faults, "print_lines", [line])
    )
    log = page.get_by_role("list", name="log of thermo")
    expect(log.get_by_text(line, exact=True)).to_be_visible()
    expect(log.locator("b")).to_have_count(0)  # printed text, never markup


def test_the_raw_packet_console_answers_with_the_boards_reply(page: Any) -> None:
    thermo = page.get_by_role("region", name="thermo")
    thermo.get_by_text("Raw packets", exact=True).click()
    ping = encode_packet(PacketType.PING, 77, b"")
    pong = encode_packet(PacketType.PONG, 77, b"")
    thermo.get_by_role("textbox", name="raw packet (hex)").fill(ping.hex(" "))
    thermo.get_by_role("button", name="send raw packet").click()
    expect(thermo.get_by_text(f"PONG seq 77: {pong.hex()}")).to_be_visible()


def test_rename_a_board_from_its_card(page: Any, served: BridgeThread) -> None:
    async def add() -> Any:
        assert served.bridge is not None
        request = {"id": "before", "port": "sim://thermostat"}
        return (await served.bridge.requests.handle("device/add", request)).status

    assert served.call(add) == "ok"
    before = page.get_by_role("region", name="before")
    expect(before.get_by_text("online", exact=True)).to_be_visible()
    before.get_by_text("Manage").click()
    before.get_by_role("textbox", name="new id for before").fill("after")
    before.get_by_role("button", name="rename before").click()
    after = page.get_by_role("region", name="after")
    expect(after.get_by_text("online", exact=True)).to_be_visible()
    expect(page.get_by_role("region", name="before")).to_have_count(0)
    text = served.config.read_text(encoding="utf-8")
    assert '\nid = "after"\n' in text and '\nid = "before"\n' not in text
    assert 'discovery_id = "before"' in text  # HA keeps its entities (docs/requests.md)
    assert "# the console's test bridge" in text

    after.get_by_text("Manage").click()
    after.get_by_role("button", name="remove after").click()
    after.get_by_role("button", name="confirm remove after").click()
    expect(page.get_by_role("region", name="after")).to_have_count(0)
    bridge = served.bridge
    assert bridge is not None

    def removed() -> bool:
        return "after" not in bridge.boards and 'id = "after"' not in served.config.read_text(
            encoding="utf-8"
        )

    served.call(lambda: wait_until(removed, 10))
