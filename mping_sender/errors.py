"""Exit codes (sysexits.h values) and the errors that end the program early."""

from __future__ import annotations

import enum
import os
import traceback


class ExitCode(enum.IntEnum):
    """Documented exit codes; README and man page list the same."""

    OK = 0
    NO_REPLY = 1  # --expect-replies: no receiver answered every datagram
    USAGE = 64  # EX_USAGE: bad command line
    UNAVAILABLE = 69  # EX_UNAVAILABLE: the host cannot do what was asked
    SOFTWARE = 70  # EX_SOFTWARE: a required part (the sandbox) cannot work here


class FatalError(Exception):
    """An error reported as one line on stderr, ending the program."""

    exit_code = ExitCode.SOFTWARE


class UsageError(FatalError):
    """The command line is wrong: the user must change it."""

    exit_code = ExitCode.USAGE


class HostError(FatalError):
    """The input is valid but this host cannot serve it (no such interface, ...)."""

    exit_code = ExitCode.UNAVAILABLE


def describe(exc: BaseException) -> str:
    """One line naming the exception and the innermost place it came from
    (file names and line numbers only: reading source lines could need files
    that the sandbox no longer lets us open)."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    where = ""
    if frames:
        frame, line = frames[-1]
        where = f" at {os.path.basename(frame.f_code.co_filename)}:{line} in {frame.f_code.co_name}"
    return f"{type(exc).__name__}: {exc}{where}"
