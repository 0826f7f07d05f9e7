"""Entry point for ``python3 -m mping_sender``."""

import sys

from mping_sender import launch

sys.exit(launch())
