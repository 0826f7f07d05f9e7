"""mping-sender: a hardened multicast test source (one mping datagram per period)."""

import sys

__version__ = "1.1.0"


def launch() -> int:
    """Load the program and run it; return the exit code. Loading can fail
    for want of memory or file descriptors (a tight RLIMIT_AS or
    RLIMIT_NOFILE): that too is one line and exit 70, not a traceback."""
    try:
        from mping_sender import signals
        signals.hold(signals.STOP_SIGNALS)  # from the first line: see signals.hold
        from mping_sender.cli import main
    except KeyboardInterrupt:  # a SIGINT in the moment before the hold: a stop before anything began
        return 0
    except Exception as exc:  # noqa: BLE001 - out of memory shows as MemoryError, ImportError, even SystemError
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        print(f"mping-sender: cannot load the program: {detail}", file=sys.stderr)
        return 70  # ExitCode.SOFTWARE, which may be what failed to load
    return main()
