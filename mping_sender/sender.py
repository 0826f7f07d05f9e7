"""The send path: one datagram per slot of an absolute schedule, the
counters, and the outage log. The waiting between slots is the event
loop's (eventloop.py)."""

from __future__ import annotations

import os
import time

from mping_sender import schedule, wire
from mping_sender.errors import FatalError
from mping_sender.eventloop import EventLoop, to_ns
from mping_sender.linkwatch import InterfaceWatch
from mping_sender.log import TRACE, INFO, WARNING
from mping_sender.ratelimit import LogLimit
from mping_sender.transmit import Transmitter

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, List, Optional

    from mping_sender.log import Logger

class Counters:
    """What the run has done so far; ``clock`` is the loop's (nanoseconds)."""

    __slots__ = ("_clock", "started", "sent", "failed", "skipped", "reported")

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self.started = clock()  # ns
        self.sent = 0
        self.failed = 0
        self.skipped = 0
        self.reported = 0  # errors the kernel reported after a datagram left (ICMP, from the error queue)

    def summary(self) -> str:
        seconds = (self._clock() - self.started) / 1e9
        return (f"summary: {self.sent} sent, {self.failed} failed, {self.skipped} slots skipped, "
                f"{self.reported} errors reported after sending, run time {seconds:.3f} s")


class FailureLog:
    """Logs an outage when sends start failing and when they have worked
    again RESUME_AFTER times in a row, not once per datagram. The streak is
    the hysteresis: sends that alternate between failing and working (a
    shaping qdisc, a full socket buffer) make one outage, not two lines per
    datagram; and an outage that still flaps is bounded by a LogLimit, whose
    last line always says how it ended. The outage lasted from its first
    failed send to the first good one of the streak that ended it. A change
    of errno in between is debug."""

    RESUME_AFTER = 3

    def __init__(self, log: Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._limit = LogLimit(log, "send outage", clock=clock)
        self.outage_errno: Optional[int] = None  # the errno of the outage going on; None while sends work
        self._run = 0
        self._streak = 0
        self._since = 0.0
        self._until = 0.0  # the first good send of the current streak

    def failed(self, err: OSError) -> None:
        self._streak = 0
        if self.outage_errno is None:
            self._limit.begin(WARNING, "send failed: %s (errno %s); repeats are counted, not logged",
                              os.strerror(err.errno) if err.errno else err, err.errno)
            self._since = self._clock()
        elif err.errno != self.outage_errno:
            self._log.debug("send now failing with: %s (errno %s)", os.strerror(err.errno) if err.errno else err,
                            err.errno)
        self.outage_errno = err.errno
        self._run += 1

    def succeeded(self) -> bool:
        """Note a successful send; True when it is the first after a failure
        (a moment to look at the interface again)."""
        if self.outage_errno is None:
            return False
        self._streak += 1
        if self._streak == 1:
            self._until = self._clock()
        if self._streak >= self.RESUME_AFTER:
            self._limit.end(INFO, "sending resumed after %d failed datagram(s) over %.1f s", self._run,
                            self._until - self._since)
            self.outage_errno, self._run = None, 0
        return self._streak == 1


class Sender:
    """Owns the send path and the schedule, and drives the event loop from
    one slot to the next; sent_hooks see each datagram that left,
    failed_hooks each one that failed."""

    def __init__(self, loop: EventLoop, transmitter: Transmitter, watch: InterfaceWatch, prefix: bytes,
                 ident: int, payload_size: int, interval: float, count: int, log: Logger) -> None:
        self._loop = loop
        self._transmitter = transmitter
        self._watch = watch
        self._buffer = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix) + payload_size))
        self._ident = ident
        self._interval = interval
        self._count = count
        self._log = log
        self._trace = log.isEnabledFor(TRACE)  # the level is set once, before the loop: no call per datagram
        self._now = loop.now  # the loop's clock (ns): the datagrams' stamps and the grid
        self._failures = FailureLog(log, lambda: loop.now() / 1e9)
        self._behind = LogLimit(log, "fell behind the schedule")
        self.counters = Counters(loop.now)
        self._sequence = 0
        self.sent_hooks: List[Callable[[int, int], None]] = []  # (sequence, monotonic ns it left)
        self.failed_hooks: List[Callable[[int], None]] = []  # (errno) of each datagram that failed

    def log_summary(self) -> None:
        """The counters' summary line (the first of the loop's summary hooks)."""
        self._log.info("%s", self.counters.summary())

    def _send(self, slot: int, late: int) -> None:
        """Send the next sequence number. It advances when, and as soon as,
        the kernel took the datagram, before anything else can raise, so
        receivers see a contiguous sequence with no number used twice
        whatever an outage or a hook does."""
        sequence = self._sequence
        sent_ns = self._now()
        wire.stamp(self._buffer, sequence, self._ident, sent_ns)
        try:
            self._transmitter.send(self._buffer)
        except OSError as err:
            self.counters.failed += 1
            self._failures.failed(err)
            for failed_hook in self.failed_hooks:
                try:
                    failed_hook(err.errno)
                except Exception as exc:  # noqa: BLE001 - as EventLoop.guarded
                    self._loop.report("failed hook", exc)
            # A send to the index of a deleted interface fails: this is how
            # its coming back is found between the once-a-second looks.
            self._watch.check()
            return
        self._sequence = (sequence + 1) % wire.SEQUENCE_MODULUS
        self.counters.sent += 1
        if self._trace:
            self._log.log(TRACE, "sent seq=%d slot=%d late=%.3f ms", sequence, slot, late / 1e6)
        for hook in self.sent_hooks:
            try:
                hook(sequence, sent_ns)
            except Exception as exc:  # noqa: BLE001 - as EventLoop.guarded, without a call per datagram
                self._loop.report("sent hook", exc)
        if self._failures.outage_errno is not None and self._failures.succeeded():
            self._watch.check()

    def run(self) -> bool:
        """Send until --count is reached (return True) or a stop signal arrives
        (False). One wake-up per slot: the loop's timer fires at the slot's
        deadline, the datagram leaves, and the periodic jobs that are due ride
        on the same tick."""
        t0 = self._now()  # the grid, in the timer's own unit: slots are exact multiples
        self.counters.started = t0
        loop, counters, count = self._loop, self.counters, self._count
        loop.start(t0)
        interval = to_ns(self._interval)
        slot, due = 0, t0
        while count == 0 or counters.sent + counters.failed < count:
            now = loop.wait(due, interval)
            if now is None:
                return False
            late = now - due
            if late < 0:
                continue
            if late >= interval:  # a slot or more behind: schedule.catch_up says where the grid resumes
                resume = schedule.catch_up(t0, interval, slot, now)
                counters.skipped += resume.skipped
                self._behind.log(WARNING, "fell behind the schedule by %.3f s: skipped %d slot(s) before "
                                 "seq=%d, resuming on the original grid", late / 1e9, resume.skipped,
                                 self._sequence)
                slot = resume.slot
                due = schedule.deadline(t0, interval, slot)
                continue
            try:
                self._send(slot, late)
            except FatalError:  # the run cannot go on (an interface that cannot be followed): exit
                raise
            except Exception as exc:  # noqa: BLE001 - as EventLoop.guarded, without a call per datagram
                loop.report("send", exc)
            loop.run_timers(now)
            slot += 1
            due += interval  # schedule.deadline(t0, interval, slot): exact, in integer nanoseconds
        return True
