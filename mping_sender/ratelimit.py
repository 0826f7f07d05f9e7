"""Bounded logging of conditions that can flap: at most ``burst`` lines per
``period`` for each condition, the rest counted and reported as one
"… N more suppressed" line. The counters of the run are not touched: only
log lines are dropped, never counts."""

from __future__ import annotations

import time

from mping_sender.log import DEBUG

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Set

    from mping_sender.log import Logger

BURST = 9  # lines per period and condition; with the "suppressed" line, 10 a period at most
PERIOD = 60.0  # seconds

# The limits holding suppressed lines, for roll_all: a plain set, usually
# empty, so the loop's once-a-second roll costs nothing. It holds
# only limits that exist anyway, and each leaves it when its line is written.
_SUPPRESSING: "Set[LogLimit]" = set()


class LogLimit:
    """The log lines of one condition ("send outage", "new receiver", ...)."""

    def __init__(self, log: Logger, condition: str, burst: int = BURST, period: float = PERIOD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self.condition = condition
        self._burst = burst
        self._period = period
        self._clock = clock
        self._start = clock()
        self._lines = 0
        self.suppressed = 0
        self._level = DEBUG  # the highest level suppressed in this period
        self._begun = False  # the last line written is a condition's beginning (begin), not its end

    def begin(self, level: int, message: str, *args: object) -> bool:
        """log() the line that says the condition started (a failure); True when written."""
        written = self.log(level, message, *args)
        if written:
            self._begun = True
        return written

    def end(self, level: int, message: str, *args: object) -> None:
        """The line that says the condition is over (a recovery). Written
        beyond the burst when the last line written was its beginning, so
        that the last line of a condition never says it is still going on;
        otherwise log()ged like any other, the beginning having been
        suppressed. Bounded all the same: one line beyond the burst at most."""
        if self._begun:
            self._begun = False
            if self._log.isEnabledFor(level):
                self._lines += 1
                self._log.log(level, message, *args)
        elif self.log(level, message, *args):
            self._begun = False

    def log(self, level: int, message: str, *args: object) -> bool:
        """Log the line unless this condition used up its lines for the period; True when logged."""
        self.roll(self._clock())
        if not self._log.isEnabledFor(level):
            return False
        if self._lines < self._burst:
            self._lines += 1
            self._log.log(level, message, *args)
            return True
        self.suppressed += 1
        self._level = max(self._level, level)
        _SUPPRESSING.add(self)
        return False

    def roll(self, now: float, final: bool = False) -> None:
        """At the end of a period (or at the end of the run, ``final``),
        report what was suppressed and start a new period."""
        if not final and now - self._start < self._period:
            return
        if self.suppressed:
            self._log.log(self._level, "%s: … %d more suppressed in the last %.0f s (counted, not logged)",
                          self.condition, self.suppressed, now - self._start)
        self._start, self._lines, self.suppressed, self._level = now, 0, 0, DEBUG
        _SUPPRESSING.discard(self)


def roll_all(now: float, final: bool = False) -> None:
    """roll() every limit with suppressed lines (the others roll when they
    next log): a loop timer, and the end of the run (``final``)."""
    if _SUPPRESSING:
        for limit in list(_SUPPRESSING):
            limit.roll(now, final)
