"""Signals delivered through a pipe, so they wake the select loop at once."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Iterable, List, Optional


def _ignore(signum: int, frame: Optional[FrameType]) -> None:
    """The Python-level handler does nothing: the wakeup byte carries the news."""


class SignalPipe:
    """Python writes each caught signal's number into a non-blocking pipe
    (``signal.set_wakeup_fd``); the loop selects on it and reads them back."""

    def __init__(self, signums: Iterable[int]) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in signums:
            signal.signal(signum, _ignore)

    def fileno(self) -> int:
        return self._read_fd

    def pending(self) -> List[int]:
        """Signals caught since the last call, in arrival order."""
        try:
            return list(os.read(self._read_fd, 512))
        except BlockingIOError:
            return []
