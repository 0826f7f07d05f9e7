"""Exit codes (sysexits.h values) and the errors that end the program early."""

from __future__ import annotations

import enum
import errno
import os


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


# What to do about running out of a resource, by errno.
RESOURCE_HINTS = {
    errno.EMFILE: "the open-file limit (RLIMIT_NOFILE, ulimit -n, LimitNOFILE=) is too low",
    errno.ENFILE: "the system's open-file table is full",
    errno.ENOMEM: "out of memory (RLIMIT_AS, ulimit -v, MemoryMax=?)",
    errno.ENOBUFS: "out of kernel buffer space",
}


def os_error_text(err: OSError) -> str:
    """An OSError as words, the errno's name and, for a resource, a hint:
    "Too many open files (EMFILE): the open-file limit ... is too low"."""
    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else type(err).__name__
    hint = RESOURCE_HINTS.get(err.errno or 0)
    return f"{err.strerror or err} ({name})" + (f": {hint}" if hint else "")


def describe(exc: BaseException) -> str:
    """One line naming the exception and the innermost place it came from
    (file names and line numbers only: reading source lines could need files
    that the sandbox no longer lets us open). The traceback's own links, not
    the traceback module (with linecache and tokenize: start-up cost)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = ""
    if tb is not None:
        code = tb.tb_frame.f_code
        where = f" at {os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"
    return f"{type(exc).__name__}: {exc}{where}"
