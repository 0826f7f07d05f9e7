"""The send loop: one datagram per slot of an absolute schedule, driven by
select() with monotonic deadlines, woken at once by signals."""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from mping_sender import schedule, wire
from mping_sender.errors import FatalError, describe
from mping_sender.linkwatch import InterfaceWatch
from mping_sender.log import TRACE
from mping_sender.ratelimit import LogLimit
from mping_sender.signals import Coalescer, SignalPipe
from mping_sender.transmit import Transmitter

# SIGHUP stops like SIGTERM (a closed terminal, or a `kill -HUP` meant as
# "go away"): there is no configuration to reload, and dying of the default
# action would skip the summary and the statistics.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SUMMARY_SIGNALS = (signal.SIGUSR1,)
SUMMARY_GAP = 1.0  # seconds: SIGUSR1 summaries closer than this are merged into one


class LoopError(FatalError):
    """The loop itself cannot go on (exit 70)."""


@dataclass
class Counters:
    """What the run has done so far."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    reported: int = 0  # errors the kernel reported after a datagram left (ICMP, from the error queue)

    def summary(self) -> str:
        now = time.monotonic()
        return (f"summary: {self.sent} sent, {self.failed} failed, {self.skipped} slots skipped, "
                f"{self.reported} errors reported after sending, run time {now - self.started:.3f} s")


class FailureLog:
    """Logs an outage when sends start failing and when they have worked
    again RESUME_AFTER times in a row, not once per datagram. The streak is
    the hysteresis: sends that alternate between failing and working (a
    shaping qdisc, a full socket buffer) make one outage, not two lines per
    datagram; and an outage that still flaps is bounded by a LogLimit. A
    change of errno in between is debug."""

    RESUME_AFTER = 3

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._limit = LogLimit(log, "send outage")
        self._errno: Optional[int] = None
        self._run = 0
        self._streak = 0
        self._since = 0.0

    def failed(self, err: OSError) -> None:
        self._streak = 0
        if self._errno is None:
            self._limit.log(logging.WARNING, "send failed: %s (errno %s); repeats are counted, not logged",
                            os.strerror(err.errno) if err.errno else err, err.errno)
            self._since = time.monotonic()
        elif err.errno != self._errno:
            self._log.debug("send now failing with: %s (errno %s)", os.strerror(err.errno) if err.errno else err,
                            err.errno)
        self._errno = err.errno
        self._run += 1

    def succeeded(self) -> bool:
        """Note a successful send; True when it is the first after a failure
        (a moment to look at the interface again)."""
        if self._errno is None:
            return False
        self._streak += 1
        if self._streak >= self.RESUME_AFTER:
            self._limit.log(logging.INFO, "sending resumed after %d failed datagram(s) over %.1f s", self._run,
                            time.monotonic() - self._since)
            self._errno, self._run = None, 0
        return self._streak == 1


@dataclass
class Timer:
    """A periodic job of the loop (watchdog ping, interface re-check, ...)."""

    period: float
    handler: Callable[[float], None]
    due: float = 0.0


class LoopErrors:
    """Unexpected exceptions inside the loop: logged with where they came from,
    the first time and then at every power of ten, so a recurring fault is
    visible without flooding the log."""

    MAX_KINDS = 64

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._seen: Dict[str, int] = {}

    def report(self, what: str, exc: Exception) -> None:
        key = f"{what}: {describe(exc)}"
        if key not in self._seen and len(self._seen) >= self.MAX_KINDS:
            self._seen.clear()
        count = self._seen[key] = self._seen.get(key, 0) + 1
        if str(count).strip("0") == "1":  # 1, 10, 100, ...
            self._log.error("%s (occurrence %d; the sender carries on)", key, count)


class Sender:
    """Owns the send path and the schedule; other parts of the program join
    the loop through add_reader, add_timer and summary_hooks instead of
    running threads."""

    def __init__(self, transmitter: Transmitter, watch: InterfaceWatch, prefix: bytes, ident: int,
                 payload_size: int, interval: float, count: int, log: logging.Logger) -> None:
        self._transmitter = transmitter
        self._watch = watch
        self._buffer = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix) + payload_size))
        self._ident = ident
        self._interval = interval
        self._count = count
        self._log = log
        self._failures = FailureLog(log)
        self._behind = LogLimit(log, "fell behind the schedule")
        self._errors = LoopErrors(log)
        self.counters = Counters()
        self._sequence = 0
        self._readers: Dict[object, Callable[[], None]] = {}
        self._summaries = Coalescer(SUMMARY_GAP)
        self._timers: List[Timer] = [Timer(SUMMARY_GAP, self._deferred_summary)]
        self.summary_hooks: List[Callable[[], None]] = []
        self.sent_hooks: List[Callable[[int, int], None]] = []  # (sequence, monotonic ns it left)

    def add_reader(self, fileobj, handler: Callable[[], None]) -> None:
        """Call handler() whenever fileobj (anything with fileno) is readable."""
        self._readers[fileobj] = handler

    def add_timer(self, period: float, handler: Callable[[float], None]) -> None:
        """Call handler(now) every period seconds, the first time one period after the start."""
        self._timers.append(Timer(period, handler))

    def log_summary(self) -> None:
        """The one-line summary, then whatever other parts add to it."""
        self._log.info("%s", self.counters.summary())
        for hook in self.summary_hooks:
            self._guarded("summary", hook)

    def _guarded(self, what: str, call: Callable, *args) -> None:
        """Run one piece of the loop; an unexpected exception is logged, not fatal."""
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - the loop must survive surprises
            self._errors.report(what, exc)

    def _send(self, slot: int, late: float) -> None:
        """Send the next sequence number. It advances when, and as soon as,
        the kernel took the datagram, before anything else can raise, so
        receivers see a contiguous sequence with no number used twice
        whatever an outage or a hook does."""
        sequence = self._sequence
        sent_ns = time.monotonic_ns()
        seconds, microseconds = wire.split_timestamp(sent_ns)
        wire.write_counters(self._buffer, sequence, self._ident, seconds, microseconds)
        try:
            self._transmit()
        except OSError as err:
            self.counters.failed += 1
            self._failures.failed(err)
            return
        self._sequence = (sequence + 1) % wire.SEQUENCE_MODULUS
        self.counters.sent += 1
        self._log.log(TRACE, "sent seq=%d slot=%d late=%.3f ms", sequence, slot, late * 1000)
        for hook in self.sent_hooks:
            self._guarded("sent hook", hook, sequence, sent_ns)
        if self._failures.succeeded():
            self._watch.check()

    def _transmit(self) -> None:
        """Send the buffer; when it fails because the interface came back under
        a new index, re-point (InterfaceWatch does) and try once more at once."""
        try:
            self._transmitter.send(self._buffer)
        except OSError:
            if not self._watch.check():
                raise
            self._transmitter.send(self._buffer)

    def _attempts(self) -> int:
        return self.counters.sent + self.counters.failed

    def run(self, signals: SignalPipe) -> bool:
        """Send until --count is reached (return True) or a stop signal arrives (False)."""
        t0 = self.counters.started = time.monotonic()
        for timer in self._timers:
            timer.due = t0 + timer.period
        slot = 0
        while self._count == 0 or self._attempts() < self._count:
            due = schedule.deadline(t0, self._interval, slot)
            if self._wait(signals, due):
                return False
            now = time.monotonic()
            if now < due:
                continue
            behind = now - due
            slot, skipped, t0 = schedule.catch_up(t0, self._interval, slot, now)
            if skipped:
                self.counters.skipped += skipped
                self._behind.log(logging.WARNING, "fell behind the schedule by %.3f s: skipped %d slot(s) before "
                                 "seq=%d, schedule re-anchored", behind, skipped, self._sequence)
            self._guarded("send", self._send, slot, now - schedule.deadline(t0, self._interval, slot))
            slot += 1
        return True

    def linger(self, signals: SignalPipe, seconds: float, done: Callable[[], bool]) -> None:
        """After the last datagram, keep serving readers and timers until
        done() holds, ``seconds`` pass or a stop signal arrives."""
        until = time.monotonic() + seconds
        while not done() and time.monotonic() < until:
            if self._wait(signals, until):
                return

    def _wait(self, signals: SignalPipe, due: float) -> bool:
        """Serve signals, readers and timers until something happens or
        ``due``; return True when asked to stop."""
        wake = min([due] + [timer.due for timer in self._timers])
        readable = self._select(signals, schedule.timeout_until(wake, time.monotonic()))
        if signals in readable and self._handle_signals(signals):
            return True
        for fileobj in readable:
            if fileobj is not signals:
                self._guarded("receive", self._readers[fileobj])
        self._run_timers(time.monotonic())
        return False

    def _select(self, signals: SignalPipe, timeout: float) -> list:
        """select() on the signal pipe and the readers. Its failure is one of
        the few fatal conditions: without it the loop can neither wait nor stop."""
        try:
            return select.select([signals, *self._readers], [], [], timeout)[0]
        except (OSError, ValueError) as err:
            raise LoopError(f"cannot wait for events: {err}") from None

    def _run_timers(self, now: float) -> None:
        for timer in self._timers:
            if now >= timer.due:
                self._guarded("timer", timer.handler, now)
                timer.due = schedule.next_due(timer.due, timer.period, now)

    def _deferred_summary(self, now: float) -> None:
        if self._summaries.due(now):
            self.log_summary()

    def _handle_signals(self, signals: SignalPipe) -> bool:
        """Log a summary for SIGUSR1 (at most one per SUMMARY_GAP, the rest
        merged into one a little later); return True when asked to stop."""
        stop = False
        for signum in signals.pending():
            if signum in SUMMARY_SIGNALS:
                if self._summaries.request(time.monotonic()):
                    self.log_summary()
            elif signum in STOP_SIGNALS:
                self._log.info("received %s, stopping", signal.Signals(signum).name)
                stop = True
        return stop
