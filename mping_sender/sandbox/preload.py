"""Import, before Landlock, every module the loop's error paths import
lazily: afterwards no file can be opened, so a late import would fail (and
seccomp refuses the openat anyway).

Measured with strace on the sandboxed program across every path (sends,
send errors, SIGUSR1, SIGTERM, SIGINT, trace logging, summary, exit): none of
them imports anything after start-up on CPython 3.9 to 3.13, because logging
already imports these. Importing them here makes that a guarantee of this
program instead of an accident of the standard library.
"""

from __future__ import annotations

import importlib

MODULES = (
    "traceback",  # logging.Handler.handleError prints the exception of a failed log call
    "linecache",  # traceback's source lines (the files themselves stay unreadable: lines are left out)
    "tokenize",  # linecache's decoding of source files
)


def modules() -> None:
    """Import MODULES now."""
    for name in MODULES:
        importlib.import_module(name)
