"""Tests for conduyt_bridge.app.log: JSON/console rendering, stdlib records, levels, idempotence."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

import conduyt_bridge.app.log
from conduyt_bridge.app.log import configure_logging, get_logger


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave the root logger, the mqtt logger and structlog as the test found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    mqtt_level = logging.getLogger("mqtt").level
    monkeypatch.setattr(conduyt_bridge.app.log, "_handler", None)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("mqtt").setLevel(mqtt_level)
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_when_not_a_tty() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)

    get_logger("conduyt_bridge.device", device="greenhouse").info("board online", firmware="1.2")

    (line,) = json_lines(stream)
    assert line["event"] == "board online"
    assert line["level"] == "info"
    assert line["device"] == "greenhouse"
    assert line["firmware"] == "1.2"
    assert line["logger"] == "conduyt_bridge.device"
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_console_when_a_tty() -> None:
    stream = TtyStream()
    configure_logging("info", "auto", stream)

    get_logger("conduyt_bridge.device", device="greenhouse").info("board online")

    text = stream.getvalue()
    assert "board online" in text
    assert "device" in text and "greenhouse" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_forced_json_on_a_tty() -> None:
    stream = TtyStream()
    configure_logging("info", "json", stream)
    get_logger("x").info("hi")
    assert json_lines(stream)[0]["event"] == "hi"


def test_forced_console_without_tty_has_no_colors() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)
    get_logger("x").warning("careful", device="d1")
    text = stream.getvalue()
    assert "careful" in text and "device=d1" in text
    assert "\x1b[" not in text


def test_stdlib_records_use_same_format() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    logging.getLogger("paho.sub").warning("socket %s closed", "x", extra={"rc": 7})

    (line,) = json_lines(stream)
    assert line["event"] == "socket x closed"
    assert line["level"] == "warning"
    assert line["logger"] == "paho.sub"
    assert line["rc"] == 7
    assert "timestamp" in line


def test_level_filters_both_kinds() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream)

    get_logger("a").info("hidden")
    logging.getLogger("b").info("hidden too")
    get_logger("a").warning("shown")

    assert [line["event"] for line in json_lines(stream)] == ["shown"]


def test_positional_args_in_structlog_events() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    get_logger("a").info("%d packets", 3)
    assert json_lines(stream)[0]["event"] == "3 packets"


def test_exception_rendered_without_locals() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)

    def fail() -> None:
        password = "".join(["hun", "ter2"])  # a local that must never reach the log
        raise RuntimeError(f"boom {len(password)}")

    try:
        fail()
    except RuntimeError:
        get_logger("a", device="d").exception("connect failed")

    (line,) = json_lines(stream)
    assert line["event"] == "connect failed"
    assert line["level"] == "error"
    assert "RuntimeError: boom 7" in line["exception"]
    assert "hunter2" not in stream.getvalue()


def test_console_exception_without_locals() -> None:
    stream = TtyStream()
    configure_logging("info", "auto", stream)
    # Built at run time: rich's tracebacks quote source lines, and the point is that the
    # *value* of a local never reaches the log.
    secret = "".join(["hun", "ter2"])
    try:
        raise ValueError("bad")
    except ValueError:
        get_logger("a").exception("failed")
    assert "ValueError: bad" in stream.getvalue()
    assert secret not in stream.getvalue()


def test_idempotent_single_handler() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    first = io.StringIO()
    second = io.StringIO()

    configure_logging("info", "json", first)
    configure_logging("info", "json", second)

    assert len(root.handlers) == before + 1
    get_logger("a").info("once")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["once"]


def test_logger_created_before_configure() -> None:
    # Module-level loggers exist before configure_logging runs.
    early = get_logger("early", device="d9")
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    early.info("late line")
    (line,) = json_lines(stream)
    assert (line["event"], line["device"]) == ("late line", "d9")


def test_bind_adds_keys() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    get_logger("a", device="d1").bind(seq=4).info("sent")
    line = json_lines(stream)[0]
    assert (line["device"], line["seq"]) == ("d1", 4)


def test_mqtt_logger_opened_up_for_debug() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    assert logging.getLogger("mqtt").level == logging.DEBUG

    logging.getLogger("mqtt").debug("Sending PINGREQ")
    line = json_lines(stream)[-1]
    assert (line["event"], line["level"], line["logger"]) == ("Sending PINGREQ", "debug", "mqtt")

    configure_logging("info", "json", stream)
    assert logging.getLogger("mqtt").level == logging.WARNING
    configure_logging("error", "json", stream)
    assert logging.getLogger("mqtt").level == logging.ERROR


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    get_logger("a").info("to stderr")
    captured = capsys.readouterr()
    assert json.loads(captured.err.strip().splitlines()[-1])["event"] == "to stderr"
    assert captured.out == ""


@pytest.mark.parametrize(("level", "fmt"), [("loud", "json"), ("info", "xml")])
def test_bad_arguments(level: str, fmt: Any) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(level, fmt, io.StringIO())


def test_level_is_case_insensitive() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream)
    get_logger("a").debug("dbg")
    assert json_lines(stream)[0]["level"] == "debug"
