"""The --stats-json destination, opened at start-up and written at the end."""

from __future__ import annotations

import errno
import os
import stat

from mping_sender.errors import HostError
from mping_sender.log import Descriptor

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Optional

STATS_STALL = 5.0  # seconds a --stats-json reader may take nothing at exit before the statistics are given up


class StatsFile:
    """The --stats-json destination: a descriptor opened at start-up (the
    sandbox forbids opening files later), written once at the end. A failure
    either way is one line naming the option and the path (exit 69).

    A regular file is opened without truncating it and rewritten in place at
    the end (written from its start, then cut to the new length), so that a
    run that fails to start, or is killed, leaves the previous run's
    statistics as they were. Not a temporary file renamed over it: after
    the sandbox nothing can be created or renamed, and ftruncate() on the
    descriptor opened before it is all the sandbox needs to allow."""

    def __init__(self, path: str, fd: int, regular: bool = False) -> None:
        self.path = path
        self._fd = fd
        self._regular = regular

    @classmethod
    def open(cls, path: Optional[str]) -> Optional["StatsFile"]:
        """``-`` is standard output, which must be open; a FIFO must have a
        reader already (opened non-blocking: without one, start-up would hang)."""
        if path is None:
            return None
        import json  # noqa: F401 - for ReplyListener.json_document, which runs when the sandbox forbids imports
        if path == "-":
            try:
                os.fstat(1)
            except OSError:
                raise HostError("--stats-json -: standard output is closed") from None
            return cls("standard output", 1)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
        except OSError as err:
            reason = "a FIFO with no reader" if err.errno == errno.ENXIO else err.strerror
            raise HostError(f"--stats-json: cannot open {path}: {reason}") from None
        os.set_blocking(fd, True)  # the reader, if a FIFO, may take its time at the end
        return cls(path, fd, stat.S_ISREG(os.fstat(fd).st_mode))

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close the file (standard output stays open: it is not ours)."""
        if self._fd != 1:
            os.close(self._fd)
            self._fd = -1

    def write(self, data: bytes) -> None:
        """Write it all (a regular file: in place of what it held), or raise
        HostError: the statistics are lost. A reader (a pipe, a FIFO) may
        take its time, but one that takes nothing for STATS_STALL seconds
        loses them: the exit never waits for ever (as the log's, the writes
        go only as far as the descriptor takes data at once)."""
        out = Descriptor(self._fd)
        view = memoryview(data)
        try:
            while view:
                if not out.wait(STATS_STALL):
                    raise HostError(f"--stats-json: {self.path} took nothing for {STATS_STALL:g} s; the statistics "
                                    f"are lost ({len(view)} of {len(data)} bytes unwritten)")
                view = view[out.write(view):]
            if self._regular:
                os.ftruncate(self._fd, len(data))
        except OSError as err:
            raise HostError(f"--stats-json: cannot write {self.path}: {err.strerror}; "
                            f"the statistics are lost ({len(view)} of {len(data)} bytes unwritten)") from None
