"""`python -m conduyt_bridge.simulator PROFILE [--pty] [--link PATH] [--tcp HOST:PORT] ...`."""

import sys

from conduyt_bridge.simulator.command import main

sys.exit(main())
