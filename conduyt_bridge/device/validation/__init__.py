"""The checks behind `conduyt_bridge.device.capabilities`, one module per kind of command.

Import them from `conduyt_bridge.device.capabilities`, which re-exports every one:
`pins` (pin existence, modes, reads, writes, subscriptions, STREAM_START masks),
`limits` (payload and reply sizes, I2C addresses), `modules` (MOD_CMD arguments),
`datastreams` (DS_WRITE values) and `commands` (one raw command packet as a whole).
"""
