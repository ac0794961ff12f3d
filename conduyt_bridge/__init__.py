"""conduyt-bridge: Conduyt boards on MQTT, and a Python library to talk to them."""

from conduyt_bridge.version import __version__

__all__ = ["__version__"]
