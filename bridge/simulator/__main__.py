"""`python -m bridge.simulator PROFILE [--pty] [--link PATH] [--tcp HOST:PORT] ...`."""

import sys

from bridge.simulator.command import main

sys.exit(main())
