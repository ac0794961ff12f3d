"""A virtual Conduyt board (the device side of the protocol) for tests, demos and benchmarks.

`SimulatedBoard` is sans-IO; `runner` serves it over asyncio streams (in-process, a pty, or
as a TCP client like the firmware's ConduytTCP); `profiles` describes the boards on offer.
See `docs/architecture.md` §9.
"""

from conduyt_bridge.simulator.board import SimulatedBoard
from conduyt_bridge.simulator.faults import Faults
from conduyt_bridge.simulator.profiles import (
    PROFILES,
    DatastreamSpec,
    ModuleSpec,
    Profile,
    get_profile,
    with_push_interval,
)
from conduyt_bridge.simulator.ptyboard import PtyBoard
from conduyt_bridge.simulator.runner import BoardRunner, open_in_process, run_tcp_client

__all__ = [
    "PROFILES",
    "BoardRunner",
    "DatastreamSpec",
    "Faults",
    "ModuleSpec",
    "Profile",
    "PtyBoard",
    "SimulatedBoard",
    "get_profile",
    "open_in_process",
    "run_tcp_client",
    "with_push_interval",
]
