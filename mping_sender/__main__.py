"""Entry point for ``python3 -m mping_sender``."""

import sys

from mping_sender.cli import main

sys.exit(main())
