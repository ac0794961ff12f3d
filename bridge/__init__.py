"""conduyt-bridge: Conduyt boards on MQTT."""

__version__ = "0.1.0"
