"""Signals: recorded by a handler, announced through a pipe that wakes the
select loop at once, and never lost."""

from __future__ import annotations

import math
import os
import signal
from types import FrameType

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional

_DRAIN_READS = 16  # 64 KiB reads per call: a full default pipe is one

# SIGHUP stops like SIGTERM (a closed terminal, or a `kill -HUP` meant as
# "go away"): there is no configuration to reload, and dying of the default
# action would skip the summary and the statistics.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def hold(signums: Iterable[int]) -> None:
    """Block these until a SignalPipe takes them over: the program's first
    step, so that a stop signal during start-up is neither a traceback
    (SIGINT's KeyboardInterrupt) nor a death without a word, but a stop,
    handled once the handlers are in place. One that comes before and the
    program then exits (a bad command line) is simply discarded with it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signums)


class SignalPipe:
    """A Python-level handler records each caught signal in a set, and
    ``signal.set_wakeup_fd`` writes a byte to a non-blocking pipe that the
    loop selects on. The byte only wakes the loop; the set says what came.
    Under a storm the pipe fills and further bytes are dropped, but the pipe
    stays readable and the set still holds every kind of signal that
    arrived, so a SIGTERM after a million SIGUSR1 is never lost, and repeats
    of one signal coalesce into one entry."""

    def __init__(self, signums: Iterable[int]) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._caught: Dict[int, None] = {}  # a dict keeps the order of first arrival
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        signums = tuple(signums)
        for signum in signums:
            signal.signal(signum, self._record)
        # Held since the start (hold): what came meanwhile is recorded now.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signums)

    def _record(self, signum: int, frame: Optional[FrameType]) -> None:
        self._caught[signum] = None

    def fileno(self) -> int:
        return self._read_fd

    @staticmethod
    def ignore(signums: Iterable[int]) -> None:
        """Ignore these from now on. At exit Python puts its handlers back to
        the default action, which for SIGUSR1 is to kill: a summary request
        arriving while the program ends must not turn exit 0 into a signal death.
        Blocked first (and for good): one that arrived for the Python handler
        but ran after SIG_IGN took its place made CPython print a traceback
        ("Signal 10 ignored due to race condition") under a SIGUSR1 storm;
        blocking runs the ones that came, and no other can come."""
        signal.pthread_sigmask(signal.SIG_BLOCK, signums)
        for signum in signums:
            signal.signal(signum, signal.SIG_IGN)

    def stop_requested(self) -> bool:
        """Whether a stop signal was caught, leaving it for pending():
        for the waits of start-up, before the loop."""
        return any(signum in self._caught for signum in STOP_SIGNALS)

    def pending(self) -> List[int]:
        """Signals caught since the last call, each once, in order of first arrival."""
        for _ in range(_DRAIN_READS):
            try:
                if len(os.read(self._read_fd, 65536)) < 65536:
                    break
            except BlockingIOError:
                break
        # A signal handled during the swap lands in one dict or the other, never nowhere.
        caught, self._caught = self._caught, {}
        return list(caught)


class Coalescer:
    """At most one action per ``gap`` seconds: a request within ``gap`` of the
    last action is merged with any others into one deferred action, which
    ``due()`` releases once the gap has passed. Pure: the caller gives the time."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self._last = -math.inf
        self._deferred = False

    def request(self, now: float) -> bool:
        """True when the action is to be done now; otherwise it is deferred."""
        self._deferred = True
        return self.due(now)

    def release_at(self) -> float:
        """When due() will release the deferred action (infinity: none is deferred)."""
        return self._last + self.gap if self._deferred else math.inf

    def due(self, now: float) -> bool:
        """True (once) when a deferred action may be done now."""
        if not self._deferred or now - self._last < self.gap:
            return False
        self._deferred, self._last = False, now
        return True
