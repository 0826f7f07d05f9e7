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
from mping_sender.log import TRACE
from mping_sender.signals import SignalPipe
from mping_sender.transmit import SockAddr

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SUMMARY_SIGNALS = (signal.SIGUSR1,)


@dataclass
class Counters:
    """What the run has done so far."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    def summary(self) -> str:
        now = time.monotonic()
        return (f"summary: {self.sent} sent, {self.failed} failed, {self.skipped} slots skipped, "
                f"run time {now - self.started:.3f} s")


class FailureLog:
    """Logs send failures once per change of errno, not once per datagram."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._errno: Optional[int] = None
        self._run = 0

    def failed(self, err: OSError) -> None:
        if err.errno != self._errno:
            self._log.warning("send failed: %s (errno %s); repeats are counted, not logged",
                              os.strerror(err.errno) if err.errno else err, err.errno)
            self._errno = err.errno
        self._run += 1

    def succeeded(self) -> None:
        if self._errno is not None:
            self._log.info("sending resumed after %d failed datagram(s)", self._run)
            self._errno, self._run = None, 0


@dataclass
class Timer:
    """A periodic job of the loop (watchdog ping, interface re-check, ...)."""

    period: float
    handler: Callable[[float], None]
    due: float = 0.0


class Sender:
    """Owns the transmit socket's send path and the schedule; other parts of
    the program join the loop through add_reader, add_timer and
    summary_hooks instead of running threads."""

    def __init__(self, sock, destination: SockAddr, prefix: bytes, ident: int,
                 payload_size: int, interval: float, count: int, log: logging.Logger) -> None:
        self._sock = sock
        self._destination = destination
        self._buffer = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix) + payload_size))
        self._ident = ident
        self._interval = interval
        self._count = count
        self._log = log
        self._failures = FailureLog(log)
        self.counters = Counters()
        self._sequence = 0
        self._readers: Dict[object, Callable[[], None]] = {}
        self._timers: List[Timer] = []
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
            hook()

    def _send(self, slot: int, late: float) -> None:
        sent_ns = time.monotonic_ns()
        seconds, microseconds = wire.split_timestamp(sent_ns)
        wire.write_counters(self._buffer, self._sequence, self._ident, seconds, microseconds)
        try:
            self._sock.sendto(self._buffer, self._destination)
        except OSError as err:
            self.counters.failed += 1
            self._failures.failed(err)
        else:
            self.counters.sent += 1
            self._failures.succeeded()
            self._log.log(TRACE, "sent seq=%d slot=%d late=%.3f ms", self._sequence, slot, late * 1000)
            for hook in self.sent_hooks:
                hook(self._sequence, sent_ns)
        self._sequence = (self._sequence + 1) % wire.SEQUENCE_MODULUS

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
            slot, skipped = schedule.catch_up(t0, self._interval, slot, now)
            if skipped:
                self.counters.skipped += skipped
                self._log.warning("fell behind the schedule: skipped %d slot(s)", skipped)
            self._send(slot, now - schedule.deadline(t0, self._interval, slot))
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
        readable, _, _ = select.select([signals, *self._readers], [], [],
                                       schedule.timeout_until(wake, time.monotonic()))
        if signals in readable and self._handle_signals(signals):
            return True
        for fileobj in readable:
            if fileobj is not signals:
                self._readers[fileobj]()
        self._run_timers(time.monotonic())
        return False

    def _run_timers(self, now: float) -> None:
        for timer in self._timers:
            if now >= timer.due:
                timer.handler(now)
                timer.due = schedule.next_due(timer.due, timer.period, now)

    def _handle_signals(self, signals: SignalPipe) -> bool:
        """Log a summary for SIGUSR1; return True when asked to stop."""
        stop = False
        for signum in signals.pending():
            if signum in SUMMARY_SIGNALS:
                self.log_summary()
            elif signum in STOP_SIGNALS:
                self._log.info("received %s, stopping", signal.Signals(signum).name)
                stop = True
        return stop
