"""The event loop: one select() over the signal pipe, an absolute timer
(timerfd) and the readers, and the periodic jobs, folded into the send
ticks whenever they can wait for one. No threads: every part of the program
joins this loop, and the send path (sender.py) drives it slot by slot."""

from __future__ import annotations

import ctypes
import math
import os
import select
import signal
import time

from mping_sender import libc, schedule
from mping_sender.errors import FatalError, describe
from mping_sender.signals import STOP_SIGNALS, Coalescer, SignalPipe

TYPE_CHECKING = False  # typing is for the checker: not imported at run time (start-up cost, issue 12)
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional

    from mping_sender.log import Logger

SUMMARY_SIGNALS = (signal.SIGUSR1,)
SUMMARY_GAP = 1.0  # seconds: SIGUSR1 summaries closer than this are merged into one


class LoopError(FatalError):
    """The loop itself cannot go on (exit 70)."""


def to_ns(seconds: float) -> float:
    """Seconds as integer nanoseconds, the loop's unit (infinity stays infinity: never)."""
    return seconds if seconds == math.inf else round(seconds * 1e9)


class MonotonicTimer:
    """A timerfd on CLOCK_MONOTONIC armed at absolute times: it becomes
    readable exactly at the deadline (no select() slack), so the loop wakes
    once per slot. Armed with a period, the kernel keeps the grid itself
    (deadline + k * period, in nanoseconds) and the send tick arms nothing:
    the loop only reads the expiry count, which makes the timer unreadable
    until its next expiry."""

    def __init__(self) -> None:
        flags = os.O_NONBLOCK | os.O_CLOEXEC
        self._fd = libc.check(libc.timerfd_create(libc.CLOCK_MONOTONIC, flags), "timerfd_create")
        # struct itimerspec at a fixed address, packed in place: arming builds no ctypes object
        self._spec = ctypes.create_string_buffer(libc.ITIMERSPEC.size)
        self._spec_address = ctypes.addressof(self._spec)

    def fileno(self) -> int:
        return self._fd

    def arm(self, deadline_ns: int, period_ns: int = 0) -> None:
        """Fire at ``deadline_ns`` (CLOCK_MONOTONIC) and then every
        ``period_ns`` (0: once). A deadline in the past fires at once. Zero
        would disarm, so the earliest is 1 ns. Clears any pending expiry."""
        seconds, nanoseconds = divmod(max(1, deadline_ns), 1_000_000_000)
        libc.ITIMERSPEC.pack_into(self._spec, 0, *divmod(period_ns, 1_000_000_000), seconds, nanoseconds)
        if libc.timerfd_settime(self._fd, libc.TFD_TIMER_ABSTIME, self._spec_address, None) == -1:
            libc.check(-1, "timerfd_settime")

    def close(self) -> None:
        os.close(self._fd)


class Timer:
    """A periodic job of the loop (watchdog ping, interface re-check, ...),
    in nanoseconds. It may run up to ``tolerance`` after it is due, which
    lets it ride on a send tick instead of waking the process on its own.
    With an infinite period it is a one-shot, due only when its handler (or
    the loop) sets ``due``."""

    __slots__ = ("period", "handler", "tolerance", "due")

    def __init__(self, period: float, handler: Callable[[float], None], tolerance: float) -> None:
        self.period = period
        self.handler = handler
        self.tolerance = tolerance
        self.due: float = 0


class LoopErrors:
    """Unexpected exceptions inside the loop: logged with where they came from,
    the first time and then at every power of ten, so a recurring fault is
    visible without flooding the log."""

    MAX_KINDS = 64

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._seen: Dict[str, int] = {}

    def report(self, what: str, exc: Exception) -> None:
        key = f"{what}: {describe(exc)}"
        if key not in self._seen and len(self._seen) >= self.MAX_KINDS:
            self._seen.clear()
        count = self._seen[key] = self._seen.get(key, 0) + 1
        if str(count).strip("0") == "1":  # 1, 10, 100, ...
            self._log.error("%s (occurrence %d; the sender carries on)", key, count)


class EventLoop:
    """Signals, readers, periodic jobs and the timer that ends each wait.
    Other parts join through add_reader, add_timer and summary_hooks. Times
    are CLOCK_MONOTONIC nanoseconds (time.monotonic_ns), the timer's own
    unit: a slot's deadline is exactly where the kernel's grid fires."""

    def __init__(self, signals: SignalPipe, log: Logger) -> None:
        self._signals = signals
        self._timerfd = MonotonicTimer()
        self._log = log
        self._errors = LoopErrors(log)
        self._readers: Dict[int, Callable[[], None]] = {}  # by file descriptor
        self._fds = [signals.fileno(), self._timerfd.fileno()]  # what select() waits on, built once
        # The timer's grid while it is armed with a period (the send slots):
        # a wait for a deadline on it arms nothing.
        self._grid_start = 0
        self._grid_period = 0  # 0: armed once, or not at all
        self._summaries = Coalescer(SUMMARY_GAP)
        # A one-shot, never due until a SIGUSR1 summary is deferred.
        self._summary_timer = Timer(math.inf, self._deferred_summary, 0)
        self._summary_timer.due = math.inf
        self._timers: List[Timer] = [self._summary_timer]
        # The earliest any job is due, and the latest the loop may wake without
        # making a job later than its tolerance: most ticks compare these two
        # numbers instead of going through the jobs (issue 12: the tick's cost).
        self.jobs_due: float = math.inf
        self._must_wake: float = math.inf
        self.summary_hooks: List[Callable[[], None]] = []

    def close(self) -> None:
        """Close the timer (the readers and the signal pipe belong to others)."""
        self._timerfd.close()

    def add_reader(self, fileobj, handler: Callable[[], None]) -> None:
        """Call handler() whenever fileobj (anything with fileno) is readable."""
        self._readers[fileobj.fileno()] = handler
        self._fds.append(fileobj.fileno())

    def add_timer(self, period: float, handler: Callable[[float], None], tolerance: Optional[float] = None) -> None:
        """Call handler(now) (time.monotonic seconds) every period seconds,
        the first time one period after start(); it may run up to
        ``tolerance`` seconds late (half a period unless told), so that it
        can share a wake-up with a send."""
        tolerance = period / 2 if tolerance is None else tolerance
        self._timers.append(Timer(to_ns(period), handler, to_ns(tolerance)))

    def start(self, now: int) -> None:
        """The jobs' grid starts now (ns)."""
        for job in self._timers:
            job.due = now + job.period
        self._plan()

    def _plan(self) -> None:
        """After a job's due time changed outside run_timers (start, a deferred
        summary): plan the next wake-up, running nothing."""
        self.run_timers(-math.inf)

    def guarded(self, what: str, call: Callable, *args) -> None:
        """Run one piece of the loop; an unexpected exception is logged, not fatal."""
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - the loop must survive surprises
            self.report(what, exc)

    def report(self, what: str, exc: Exception) -> None:
        """An unexpected exception in one piece of the loop (for pieces on the
        send tick, which catch it themselves rather than go through guarded())."""
        self._errors.report(what, exc)

    def log_summary(self) -> None:
        """The summary lines of every part, in the order they joined."""
        for hook in self.summary_hooks:
            self.guarded("summary", hook)

    def run_timers(self, now: int) -> None:
        """Run the jobs that are due, and plan the next wake-up in the same
        pass; called on a send tick when ``jobs_due`` has come (the sender
        compares, so that most ticks make no call), and whenever the loop
        wakes for a job that could not wait for a tick. An exception in a
        job is logged, not fatal (as guarded(), without a call per job)."""
        first = must = math.inf
        for job in self._timers:
            if now >= job.due:
                job.due = schedule.next_due(job.due, job.period, now)  # before the handler: a one-shot sets its own
                try:
                    job.handler(now / 1e9)
                except Exception as exc:  # noqa: BLE001 - the loop must survive surprises
                    self.report("timer", exc)
            if job.due < first:
                first = job.due
            if job.due + job.tolerance < must:
                must = job.due + job.tolerance
        self.jobs_due, self._must_wake = first, must

    def wait(self, due: int, period: int = 0) -> Optional[int]:
        """Serve signals, readers and jobs until something happens or ``due``
        (ns) passes; return the time it woke (ns), or None when asked to stop.
        ``period``: ``due`` is a slot of the grid due + k * period, which the
        timer then keeps by itself. A deadline already past is polled, not
        waited for, and readers and jobs are left for after the caller's send."""
        wake = due if due <= self._must_wake else schedule.wake(due, self._timers)
        timeout = 0
        if time.monotonic_ns() < wake:
            timeout = None  # the timer ends the wait
            if wake != due or not period or period != self._grid_period or wake < self._grid_start \
                    or (wake - self._grid_start) % period:  # not a point of the grid the timer keeps
                self._arm(wake, period if wake == due else 0)
        try:
            readable = select.select(self._fds, [], [], timeout)[0]
        except (OSError, ValueError) as err:  # fatal: without select() the loop can neither wait nor stop
            raise LoopError(f"cannot wait for events: {err}") from None
        if self._fds[1] in readable:
            try:  # consume the expiries (the count is not needed: the schedule works from the clock)
                os.read(self._fds[1], 8)
            except BlockingIOError:
                pass
        if self._fds[0] in readable and self._handle_signals():
            return None
        now = time.monotonic_ns()
        if now >= due:
            return now  # the slot first: a reader still readable wakes the next wait at once
        for fd in readable:
            handler = self._readers.get(fd)
            if handler is not None:
                self.guarded("receive", handler)
        now = time.monotonic_ns()
        if now >= self.jobs_due:
            self.run_timers(now)
        return now

    def _arm(self, wake: int, period: int) -> None:
        """Have the timer fire at ``wake`` (and every ``period`` after it, when
        not 0). Its failure is fatal: without it the loop cannot wait."""
        try:
            self._timerfd.arm(wake, period)
        except OSError as err:
            raise LoopError(f"cannot arm the timer: {err}") from None
        self._grid_start, self._grid_period = wake, period

    def linger(self, seconds: float, done: Callable[[], bool]) -> None:
        """After the last datagram, keep serving readers and jobs until
        done() holds, ``seconds`` pass or a stop signal arrives."""
        until = time.monotonic_ns() + to_ns(seconds)
        while not done() and time.monotonic_ns() < until:
            if self.wait(until) is None:
                return

    def _deferred_summary(self, now: float) -> None:
        if self._summaries.due(now):
            self.log_summary()
        self._summary_timer.due = to_ns(self._summaries.release_at())

    def _handle_signals(self) -> bool:
        """Log a summary for SIGUSR1 (at most one per SUMMARY_GAP, the rest
        merged into one a little later); return True when asked to stop."""
        stop = False
        for signum in self._signals.pending():
            if signum in SUMMARY_SIGNALS:
                if self._summaries.request(time.monotonic()):
                    self.log_summary()
                else:  # deferred: due within SUMMARY_GAP, whatever the interval
                    self._summary_timer.due = to_ns(self._summaries.release_at())
                    self._plan()
            elif signum in STOP_SIGNALS:
                self._log.info("received %s, stopping", signal.Signals(signum).name)
                stop = True
        return stop
