"""The event loop: one select() over the signal pipe, an absolute timer
(timerfd), the readers and the writers, and the periodic jobs. No threads: every part of
the program joins this loop, and the send path (sender.py) drives it slot by
slot, through wait() and run_timers().

What the rest relies on:

- Times are CLOCK_MONOTONIC integer nanoseconds, the timer's own unit: a
  slot's deadline is exactly where the kernel's timer fires.
- One wake-up per slot. The wait for a slot arms the timer at the slot's
  absolute deadline, with the interval as its period: from then on the
  kernel keeps the grid, and later waits for slots on it arm nothing.
- A job rides on the send ticks: it may run up to its tolerance after it is
  due, so the loop wakes for a job only when the next slot would be too
  late for it; otherwise the tick that sends the slot's datagram runs it,
  after the send. The loop goes through its few jobs at every wait and
  tick (about a microsecond): no cached next-job time to keep in step.
- A job never runs twice to catch up: after it runs, it is next due at the
  first point of its own grid after now.
- The slot comes first: a wait that ends at or after its deadline returns
  at once, and readers still readable wake the next wait.
- A stop signal ends the wait at once; SIGUSR1 summaries come at most one
  per SUMMARY_GAP, the rest merged into one a little later.
- Writers are background work (the metrics endpoint's responses): the
  loop waits for them to be writable only while the next slot is further
  than WRITE_MARGIN, so that nearer the slot it sleeps until the slot rather
  than spin on a descriptor that stays writable; and after each turn of
  theirs they rest, so that they take at most WRITE_SHARE of the time. A
  process that keeps a CPU busy is the one the kernel makes wait when the
  CPUs are contended, and then its slots come late.
- An exception in a reader, a writer, a job or a hook is logged (LoopErrors) and the
  loop carries on; only the wait itself failing is fatal (LoopError).

The kernel (clock, timer, select) is one object, KernelWait, handed to the
loop: tests give the loop a fake one, with a clock they move themselves."""

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

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Sequence, Tuple

    from mping_sender.log import Logger

SUMMARY_SIGNALS = (signal.SIGUSR1,)
SUMMARY_GAP = 1.0  # seconds: SIGUSR1 summaries closer than this are merged into one
WRITE_MARGIN = 500_000  # ns before a slot from which writers wait for it (and a long task of theirs stops)
WRITE_SHARE = 0.25  # of the time, at most, for the writers


class LoopError(FatalError):
    """The loop itself cannot go on (exit 70)."""


def to_ns(seconds: float) -> float:
    """Seconds as integer nanoseconds, the loop's unit (infinity stays infinity: never)."""
    return seconds if seconds == math.inf else round(seconds * 1e9)


class MonotonicTimer:
    """A timerfd on CLOCK_MONOTONIC armed at absolute times: it becomes
    readable exactly at the deadline (no select() slack). Armed with a
    period, the kernel keeps the grid itself (deadline + k * period, in
    nanoseconds); reading the expiry count makes it unreadable until its
    next expiry."""

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


class KernelWait:
    """The loop's contact with the kernel: the clock (``now``, in
    nanoseconds), the timer, and select(). Tests give the loop an object
    with the same four members and a clock of their own."""

    now = staticmethod(time.monotonic_ns)

    def __init__(self) -> None:
        self._timer = MonotonicTimer()
        self._fd = self._timer.fileno()
        # The grid the timer keeps while it is armed with a period (the send
        # slots): a wait for a point of it arms nothing.
        self._grid_start = 0
        self._grid_period = 0  # 0: armed once, or not at all

    def fileno(self) -> int:
        """The timer's descriptor, which the loop puts among those it waits on."""
        return self._fd

    def close(self) -> None:
        self._timer.close()

    def wait(self, fds: List[int], wake: Optional[int], period: int, write_fds: Sequence[int] = (),
             rest: Optional[float] = None) -> Tuple[List[int], List[int]]:
        """Wait until one of ``fds`` is readable, one of ``write_fds``
        writable, or ``wake`` (ns) comes, and return the readable ones and
        the writable ones; None: poll. ``period`` (0: none): ``wake`` is a
        point of the grid wake + k * period, which the timer then keeps.
        ``rest``: seconds after which select() returns anyway (the writers'
        rest ends: select's own timeout, no arming for background work)."""
        timeout = 0
        if wake is not None:
            timeout = rest  # None: the timer ends the wait
            if not period or period != self._grid_period or wake < self._grid_start \
                    or (wake - self._grid_start) % period:  # not a point of the grid the timer keeps
                try:
                    self._timer.arm(wake, period)
                except OSError as err:  # fatal: without the timer the loop cannot wait
                    raise LoopError(f"cannot arm the timer: {err}") from None
                self._grid_start, self._grid_period = wake, period
        try:
            readable, writable, _ = select.select(fds, write_fds, [], timeout)
        except (OSError, ValueError) as err:  # fatal: without select() the loop can neither wait nor stop
            raise LoopError(f"cannot wait for events: {err}") from None
        if self._fd in readable:
            try:  # consume the expiries (the count is not needed: the schedule works from the clock)
                os.read(self._fd, 8)
            except BlockingIOError:
                pass
        return readable, writable


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
    """Signals, readers, writers, periodic jobs and the timer that ends each
    wait. Other parts join through add_reader, add_writer, add_timer and
    summary_hooks; the
    sender drives it through wait() and run_timers(), on the loop's clock
    ``now`` (CLOCK_MONOTONIC nanoseconds)."""

    def __init__(self, signals: SignalPipe, log: Logger, kernel: Optional[KernelWait] = None) -> None:
        self._signals = signals
        self._kernel = KernelWait() if kernel is None else kernel
        self.now: Callable[[], int] = self._kernel.now
        self._log = log
        self._errors = LoopErrors(log)
        self._readers: Dict[int, Callable[[], None]] = {}  # by file descriptor
        self._fds = [signals.fileno(), self._kernel.fileno()]  # what select() waits on, built once
        self._writers: Dict[int, Callable[[], None]] = {}  # by file descriptor
        self._write_fds: List[int] = []  # what select() waits to be writable
        self._writers_rest_until = 0  # ns: the writers' rest after their last turn
        # The slot the current wait ends at (ns): a writer with a long task
        # stops WRITE_MARGIN before it.
        self.due: float = math.inf
        self._summaries = Coalescer(SUMMARY_GAP)
        # A one-shot, never due until a SIGUSR1 summary is deferred.
        self._summary_timer = Timer(math.inf, self._deferred_summary, 0)
        self._summary_timer.due = math.inf
        self._timers: List[Timer] = [self._summary_timer]
        self.summary_hooks: List[Callable[[], None]] = []

    def close(self) -> None:
        """Close the timer (the readers and the signal pipe belong to others)."""
        self._kernel.close()

    def add_reader(self, fileobj, handler: Callable[[], None]) -> None:
        """Call handler() whenever fileobj (anything with fileno) is readable."""
        self._readers[fileobj.fileno()] = handler
        self._fds.append(fileobj.fileno())

    def remove_reader(self, fd: int) -> None:
        """Stop watching a descriptor added by add_reader (before it is closed)."""
        del self._readers[fd]
        self._fds.remove(fd)

    def add_writer(self, fd: int, handler: Callable[[], None]) -> None:
        """Call handler() whenever descriptor fd is writable, the next slot
        further than WRITE_MARGIN and the writers' rest over, until remove_writer."""
        self._writers[fd] = handler
        self._write_fds.append(fd)

    def remove_writer(self, fd: int) -> None:
        del self._writers[fd]
        self._write_fds.remove(fd)

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

    def guarded(self, what: str, call: Callable, *args) -> None:
        """Run one piece of the loop; an unexpected exception is logged, not
        fatal. A FatalError is no surprise: the piece found that the run
        cannot go on (an interface that cannot be followed), and it ends the run."""
        try:
            call(*args)
        except FatalError:
            raise
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
        """Run the jobs that are due at ``now`` (ns), in the order they
        joined: on every send tick, after the datagram, and when the loop
        woke for a job that could not wait for the tick."""
        for job in self._timers:
            if now >= job.due:
                job.due = schedule.next_due(job.due, job.period, now)  # before the handler: a one-shot sets its own
                self.guarded("timer", job.handler, now / 1e9)

    def wait(self, due: int, period: int = 0) -> Optional[int]:
        """Serve signals, readers, writers and jobs until something happens
        or ``due`` (ns) passes; return the time it woke (ns), or None when
        asked to stop. ``period``: ``due`` is a slot of the grid due + k *
        period, which the timer then keeps by itself. A deadline already past
        is polled, not waited for, and readers, writers and jobs are left for
        after the caller's send."""
        wake = schedule.wake(due, self._timers)
        now = self.now()
        if self._write_fds:
            readable, writable = self._wait_with_writers(now, due, wake, period)
        else:
            readable, writable = self._kernel.wait(self._fds, wake if now < wake else None,
                                                   period if wake == due else 0)
        if self._fds[0] in readable and self._handle_signals():
            return None
        now = self.now()
        if now >= due:
            return now  # the slot first: a reader still readable wakes the next wait at once
        self.due = due
        for fd in readable:
            handler = self._readers.get(fd)  # a handler before may have removed it
            if handler is not None:
                self.guarded("receive", handler)
        if writable:
            start = self.now()
            for fd in writable:
                handler = self._writers.get(fd)
                if handler is not None:
                    self.guarded("write", handler)
            end = self.now()
            self._writers_rest_until = end + int((end - start) * (1 / WRITE_SHARE - 1))
        now = self.now()
        self.run_timers(now)
        return now

    def _wait_with_writers(self, now: int, due: int, wake: int, period: int) -> Tuple[List[int], List[int]]:
        """The kernel's wait, with the writers when the slot is far and their
        rest over, or until their rest ends when that comes before the slot."""
        write_fds: List[int] = []
        rest = None
        if now + WRITE_MARGIN < due:
            if now >= self._writers_rest_until:
                write_fds = self._write_fds
            elif self._writers_rest_until + WRITE_MARGIN < due:
                rest = (self._writers_rest_until - now) / 1e9
        return self._kernel.wait(self._fds, wake if now < wake else None, period if wake == due else 0, write_fds,
                                 rest)

    def linger(self, seconds: float, done: Callable[[], bool]) -> None:
        """After the last datagram, keep serving readers and jobs until
        done() holds, ``seconds`` pass or a stop signal arrives."""
        until = self.now() + to_ns(seconds)
        while not done() and self.now() < until:
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
                if self._summaries.request(self.now() / 1e9):
                    self.log_summary()
                else:  # deferred: due within SUMMARY_GAP, whatever the interval
                    self._summary_timer.due = to_ns(self._summaries.release_at())
            elif signum in STOP_SIGNALS:
                self._log.info("received %s, stopping", signal.Signals(signum).name)
                stop = True
        return stop
