"""The transport of a configured board, from its `port` (`docs/architecture.md` §1)."""

from __future__ import annotations

from conduyt_bridge.app.config import DeviceConfig
from conduyt_bridge.device.transports import (
    ListenTransport,
    SerialTransport,
    SimTransport,
    TcpListener,
    TcpTransport,
    Transport,
)


def make_transport(
    device: DeviceConfig, listeners: dict[tuple[str, int], TcpListener]
) -> Transport:
    """The transport for a device's `port` (`docs/architecture.md` §1); a `listen://`
    port shares the listener of its address in `listeners` (created there if new)."""
    kind = device.port_kind
    if kind == "sim":
        assert device.sim_profile is not None
        return SimTransport(device.sim_profile, device_id=device.device_id)
    if kind == "tcp":
        assert device.net_address is not None
        return TcpTransport(*device.net_address)
    if kind == "listen":
        assert device.net_address is not None
        listener = listeners.get(device.net_address)
        if listener is None:
            listener = TcpListener(
                *device.net_address, hello_timeout_s=device.hello_timeout_ms / 1000 * 2
            )
            listeners[device.net_address] = listener
        return ListenTransport(listener, device.mcu_id)
    return SerialTransport(device.port, device.baudrate)


__all__ = ["make_transport"]
