"""The private parts of aiomqtt and paho-mqtt that the QoS 0 fast path uses
(`conduyt_bridge/northbound/mqtt/fastpath.py`, `docs/libraries.md` §1-2), checked one by one
so that an upgrade that changes any of them fails here, naming it, instead of as lost or
reordered messages. The versions are pinned in `pyproject.toml`; upgrade them together with
this test."""

from __future__ import annotations

import collections
import re
import socket
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def pinned(name: str) -> str:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for dep in deps:
        match = re.fullmatch(rf"{re.escape(name)}==([\w.]+)", dep)
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned with == in pyproject.toml")


@pytest.mark.parametrize("name", ["aiomqtt", "paho-mqtt"])
def test_installed_versions_are_the_pinned_ones(name: str) -> None:
    assert version(name) == pinned(name), (
        f"{name} {version(name)} is installed but {pinned(name)} is pinned: the fast path "
        "was checked against the pinned version only"
    )


def _paho(protocol: int = mqtt.MQTTv5) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)


async def test_aiomqtt_client_holds_its_paho_client_as__client() -> None:
    client = aiomqtt.Client("127.0.0.1", 1883)
    assert isinstance(getattr(client, "_client", None), mqtt.Client), "aiomqtt.Client._client"


@pytest.mark.parametrize(
    ("attribute", "check"),
    [
        ("_sock", lambda v: v is None),
        ("_out_packet", lambda v: isinstance(v, collections.deque)),
        ("_sock_send", callable),
        ("_call_socket_register_write", callable),
        ("_registered_write", lambda v: v is False),
        ("max_inflight_messages", lambda v: v == 20),
        ("disable_logger", callable),
        ("socket", callable),
    ],
)
def test_paho_client_attributes(attribute: str, check: Any) -> None:
    client = _paho()
    assert hasattr(client, attribute), f"paho Client.{attribute} is gone"
    assert check(getattr(client, attribute)), f"paho Client.{attribute} changed type or default"


def _connected_pair(client: mqtt.Client) -> socket.socket:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    return peer


def test_paho_writes_a_queued_chunk_without_publish_callbacks() -> None:
    """`Qos0Writer` queues bytes as `{"command": 0, ...}` dicts in `_out_packet`; paho's
    writer must send them from `pos`, count `to_process` down, and call no `on_publish`
    (that would build PUBACK Properties per chunk)."""
    client = _paho()
    published: list[int] = []
    client.on_publish = lambda *args: published.append(args[2])
    peer = _connected_pair(client)
    try:
        chunk: dict[str, Any] = {
            "command": 0,
            "mid": 0,
            "qos": 0,
            "pos": 2,
            "to_process": 4,
            "packet": bytearray(b"xxABCD"),
            "info": None,
        }
        client._out_packet.append(chunk)  # type: ignore[arg-type]
        assert client.loop_write() == mqtt.MQTT_ERR_SUCCESS
        assert peer.recv(100) == b"ABCD", "paho _packet_write: 'packet'[pos:] not sent"
        assert chunk["to_process"] == 0 and chunk["pos"] == 6, "_OutPacket pos/to_process"
        assert len(client._out_packet) == 0
        assert published == [], "paho calls on_publish for a non-PUBLISH command"
    finally:
        ours, client._sock = client._sock, None
        if isinstance(ours, socket.socket):
            ours.close()
        peer.close()


def test_paho_sock_send_reports_a_full_socket_and_registers_the_writer() -> None:
    client = _paho()
    registered: list[object] = []
    client.on_socket_register_write = lambda c, u, sock: registered.append(sock)
    peer = _connected_pair(client)
    ours = client._sock
    try:
        assert isinstance(ours, socket.socket)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sent = client._sock_send(b"ab")
        assert sent == 2, "paho _sock_send returns the bytes sent"
        with pytest.raises(BlockingIOError):
            for _ in range(100_000):
                client._sock_send(b"x" * 65_536)
        assert registered == [ours], "paho _sock_send no longer registers the writer on EAGAIN"
        assert client._registered_write is True
    finally:
        client._sock = None
        peer.close()
        if isinstance(ours, socket.socket):
            ours.close()


async def test_aiomqtt_publish_hands_the_message_to_paho_in_its_first_step() -> None:
    """`MqttConnection._start_send` relies on it: a QoS 1 publish task reaches paho's
    queue in its first step, before any QoS 0 flush scheduled after it."""
    client = aiomqtt.Client("127.0.0.1", 1883)
    calls: list[str] = []

    def publish(topic: str, *_: Any, **__: Any) -> mqtt.MQTTMessageInfo:
        calls.append(topic)
        info = mqtt.MQTTMessageInfo(1)
        info.rc = mqtt.MQTT_ERR_SUCCESS
        info._set_as_published()
        return info

    client._client.publish = publish  # type: ignore[method-assign]
    coro = client.publish("t/x", b"1", qos=1)
    with pytest.raises(StopIteration):
        coro.send(None)
    assert calls == ["t/x"], "aiomqtt.Client.publish no longer calls paho before awaiting"
