"""The loop's logic (EventLoop and Sender) on a fake kernel: a clock the
test moves, signals and readers that become ready at set times, a
transmitter that records what it is given. Pure logic, no root, no
namespaces, no real time: a stall is the clock jumping, and every figure
is exact. What the kernel itself does (the timerfd, select(), the signal
pipe) is tested for real in test_end_to_end, test_hostile and, for
KernelWait, at the end of this file; the real program's system calls per
datagram are counted by the bench (`make bench BENCH_ARGS="--only syscalls"`)."""

from __future__ import annotations

import ipaddress
import signal
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest

from helpers import string_log
from mping_sender import wire
from mping_sender.eventloop import WRITE_MARGIN, WRITE_SHARE, EventLoop, KernelWait, LoopError
from mping_sender.sender import Sender

MS = 1_000_000  # ns
SECOND = 1_000_000_000


class FakeSignals:
    """The signal pipe as the loop sees it: readable while a signal is pending."""

    FD = 1000

    def __init__(self) -> None:
        self._caught: Dict[int, None] = {}

    def fileno(self) -> int:
        return self.FD

    def readable(self) -> bool:
        return bool(self._caught)

    def raise_(self, signum: int) -> None:
        self._caught[signum] = None

    def pending(self) -> List[int]:
        caught, self._caught = self._caught, {}
        return list(caught)


class FakeSocket:
    """A reader's socket: readable while it holds datagrams."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.queue: List[bytes] = []

    def fileno(self) -> int:
        return self.fd

    def readable(self) -> bool:
        return bool(self.queue)


class FakeKernel:
    """KernelWait's four members on a clock the test moves: a wait jumps the
    clock to its wake-up time, or to the first event before it that makes a
    descriptor readable. ``waits`` records each wait's (wake, period), None
    for a poll."""

    TIMER_FD = 1001

    def __init__(self, start: int = 1000 * SECOND) -> None:
        self.clock = start
        self.sources: Dict[int, object] = {}  # fd -> an object with readable()
        self.events: List[Tuple[int, Callable[[], None]]] = []
        self.waits: List[Tuple[Optional[int], int]] = []
        self.closed = False

    def now(self) -> int:
        return self.clock

    def fileno(self) -> int:
        return self.TIMER_FD

    def close(self) -> None:
        self.closed = True

    def at(self, when: int, action: Callable[[], None]) -> None:
        """Run ``action`` (a signal arriving, a datagram coming in) at ``when``."""
        self.events.append((when, action))
        self.events.sort(key=lambda event: event[0])

    def wait(self, fds: List[int], wake: Optional[int], period: int, write_fds: Sequence[int] = (),
             rest: Optional[float] = None) -> Tuple[List[int], List[int]]:
        """Writers always have room here; ``rest`` ends the wait early, as select's timeout."""
        self.waits.append((wake, period))
        end = wake if rest is None or wake is None else min(wake, self.clock + round(rest * SECOND))
        while True:
            while self.events and self.events[0][0] <= self.clock:
                self.events.pop(0)[1]()
            ready = [fd for fd in fds if fd in self.sources and self.sources[fd].readable()]
            if wake is not None and self.clock >= wake:
                ready.append(self.TIMER_FD)
            if ready or write_fds or end is None or self.clock >= end:
                return ready, list(write_fds)
            self.clock = min(end, self.events[0][0]) if self.events else end


class FakeTransmitter:
    """Records each datagram's sequence; fails or stalls where the test says."""

    def __init__(self, kernel: FakeKernel) -> None:
        self.kernel = kernel
        self.sent: List[int] = []
        self.failing = False
        self.calls = 0
        self.on_send: Dict[int, Callable[[], None]] = {}  # what happens during the send, by the call's number

    def send(self, buffer: bytearray) -> None:
        action = self.on_send.pop(self.calls, None)
        self.calls += 1
        if action is not None:
            action()
        if self.failing:
            raise OSError(101, "Network is unreachable")
        self.sent.append(wire.decode(bytes(buffer)).sequence)


class FakeWatch:
    """The interface never moves: check() finds nothing to re-point."""

    def __init__(self) -> None:
        self.checks = 0

    def check(self) -> bool:
        self.checks += 1
        return False


class Rig:
    """An EventLoop and a Sender on the fakes, with the log in a string and
    every datagram's (sequence, send time) from the sent hook."""

    def __init__(self, interval: float = 0.01, count: int = 0) -> None:
        self.kernel = FakeKernel()
        self.signals = FakeSignals()
        self.kernel.sources[FakeSignals.FD] = self.signals
        self.log, self.stream = string_log()
        self.loop = EventLoop(self.signals, self.log, self.kernel)
        self.transmitter = FakeTransmitter(self.kernel)
        self.watch = FakeWatch()
        endpoint = (ipaddress.ip_address("127.0.0.1"), 4321)
        prefix = wire.encode_prefix("2.0", wire.TYPE_SENDER, 1, endpoint, endpoint)
        self.sender = Sender(self.loop, self.transmitter, self.watch, prefix, 7, 0, interval, count, self.log)
        self.interval = round(interval * SECOND)
        self.t0 = self.kernel.clock
        self.stamps: List[Tuple[int, int]] = []
        self.sender.sent_hooks.append(lambda sequence, sent_ns: self.stamps.append((sequence, sent_ns)))
        self.loop.summary_hooks.append(self.sender.log_summary)

    def stop_at(self, when: int, signum: int = signal.SIGTERM) -> None:
        self.kernel.at(when, lambda: self.signals.raise_(signum))

    def lines(self, text: str) -> List[str]:
        return [line for line in self.stream.getvalue().splitlines() if text in line]


def test_one_wait_per_datagram_on_the_timer_s_own_grid():
    rig = Rig(interval=0.01, count=50)
    assert rig.sender.run() is True
    assert rig.transmitter.sent == list(range(50))
    # Every datagram leaves exactly at its slot, t0 + k * interval.
    assert [sent_ns - rig.t0 for _, sent_ns in rig.stamps] == [k * rig.interval for k in range(50)]
    # Datagram 0 is due at once (a poll); each other one is one wait for its
    # slot, with the interval as the period: the timer keeps the grid.
    assert rig.kernel.waits == [(None, rig.interval)] + [(rig.t0 + k * rig.interval, rig.interval)
                                                          for k in range(1, 50)]
    assert rig.sender.counters.skipped == 0
    assert rig.lines("summary:") == []  # run() logs nothing but what went wrong


def test_jobs_ride_on_the_send_ticks_in_the_order_they_joined():
    rig = Rig(interval=0.1, count=31)
    ran: List[Tuple[str, int]] = []
    rig.loop.add_timer(1.0, lambda now: ran.append(("first", rig.kernel.clock)), tolerance=0.1)
    rig.loop.add_timer(1.0, lambda now: ran.append(("second", rig.kernel.clock)))
    rig.loop.add_timer(0.25, lambda now: ran.append(("quarter", rig.kernel.clock)))
    assert rig.sender.run() is True
    # Due at 1 s, 2 s, 3 s: on the tick of the slot at that second, after
    # its datagram, first before second. The quarter-second job (half a
    # period of tolerance, 0.125 s, longer than an interval) rides on the
    # first tick at or after it is due: 0.3, 0.5, 0.8, 1.0, ...
    at = [(name, (when - rig.t0) // MS) for name, when in ran]
    assert [entry for entry in at if entry[0] != "quarter"] == [
        ("first", 1000), ("second", 1000), ("first", 2000), ("second", 2000), ("first", 3000), ("second", 3000)]
    assert [ms for name, ms in at if name == "quarter"] == [300, 500, 800, 1000, 1300, 1500, 1800, 2000,
                                                             2300, 2500, 2800, 3000]
    # ... and costs no wake-up of its own: one wait per datagram.
    assert len(rig.kernel.waits) == 31


def test_a_job_that_cannot_wait_for_the_tick_wakes_the_loop_at_its_time():
    rig = Rig(interval=1.0, count=4)
    ran: List[int] = []
    rig.loop.add_timer(0.4, lambda now: ran.append((rig.kernel.clock - rig.t0) // MS), tolerance=0.01)
    assert rig.sender.run() is True
    assert ran == [400, 800, 1200, 1600, 2000, 2400, 2800]
    # The waits for a job end at the job's time, once (no period): the next
    # wait for the slot puts the timer back on the slots' grid.
    job_waits = [(wake, period) for wake, period in rig.kernel.waits if wake is not None and (wake - rig.t0) % SECOND]
    assert job_waits == [(rig.t0 + ms * MS, 0) for ms in (400, 800, 1200, 1600, 2400, 2800)]
    assert [sent_ns - rig.t0 for _, sent_ns in rig.stamps] == [0, SECOND, 2 * SECOND, 3 * SECOND]


def test_writers_work_between_the_slots_at_most_their_share_and_never_spin():
    rig = Rig(interval=0.01, count=100)
    turns: List[int] = []

    def writer() -> None:  # each turn costs 0.3 ms, until 200 turns are done
        turns.append(rig.kernel.clock)
        rig.kernel.clock += 300_000
        if len(turns) == 200:
            rig.loop.remove_writer(77)

    rig.loop.add_writer(77, writer)
    assert rig.sender.run() is True
    # Every datagram on its slot, and no turn begun within the margin before one.
    assert [sent_ns - rig.t0 for _, sent_ns in rig.stamps] == [k * rig.interval for k in range(100)]
    assert all((turn - rig.t0) % rig.interval < rig.interval - WRITE_MARGIN for turn in turns)
    # At most their share of the time: a turn of 0.3 ms, then a rest of 0.9 ms.
    assert len(turns) == 200 and min(b - a for a, b in zip(turns, turns[1:])) >= 300_000 / WRITE_SHARE
    # A wait per slot and per rest, not a spin: about one per turn.
    assert len(rig.kernel.waits) <= 100 + 2 * len(turns)


def test_a_stall_skips_to_the_next_slot_of_the_original_grid_without_a_burst():
    rig = Rig(interval=0.01, count=20)
    # Datagram 5 is sent, then the process stalls for 3.5 intervals.
    rig.transmitter.on_send[5] = lambda: setattr(rig.kernel, "clock", rig.kernel.clock + 35 * MS)
    assert rig.sender.run() is True
    assert rig.transmitter.sent == list(range(20)), "the sequence stays contiguous"
    slots = [(sent_ns - rig.t0) / rig.interval for _, sent_ns in rig.stamps]
    # Datagram 5 left at slot 5 and the stall ended at 8.5: slots 6, 7 and 8
    # are skipped; 9 is the next, on the original grid.
    assert slots[:6] == [0, 1, 2, 3, 4, 5] and slots[6:] == list(range(9, 23))
    assert rig.sender.counters.skipped == 3
    [warning] = rig.lines("fell behind")
    assert "by 0.025 s: skipped 3 slot(s) before seq=6, resuming on the original grid" in warning


def test_a_stall_shorter_than_an_interval_is_late_but_skips_nothing():
    rig = Rig(interval=0.01, count=5)
    rig.transmitter.on_send[1] = lambda: setattr(rig.kernel, "clock", rig.kernel.clock + 19 * MS)
    assert rig.sender.run() is True
    # Datagram 1 stalls from 10 ms to 29 ms: slot 2 is 9 ms late, less than
    # an interval, and is sent; slot 3 is on time again.
    assert [(sent_ns - rig.t0) // MS for _, sent_ns in rig.stamps] == [0, 10, 29, 30, 40]
    assert rig.sender.counters.skipped == 0 and rig.lines("fell behind") == []


def test_a_job_never_runs_twice_to_catch_up_after_a_stall():
    rig = Rig(interval=0.1, count=30)
    ran: List[int] = []
    rig.loop.add_timer(0.5, lambda now: ran.append((rig.kernel.clock - rig.t0) // MS))
    rig.transmitter.on_send[3] = lambda: setattr(rig.kernel, "clock", rig.kernel.clock + 1700 * MS)
    assert rig.sender.run() is True
    # Due at 0.5, 1.0, 1.5 and 2.0 s: the stall (0.3 to 2.0 s) swallows the
    # first three, and the job runs once after it, then on its own grid.
    assert ran[:3] == [2000, 2500, 3000], ran


def test_a_stop_signal_during_a_send_ends_the_run_at_the_next_wait():
    rig = Rig(interval=0.01)
    rig.transmitter.on_send[7] = lambda: rig.signals.raise_(signal.SIGTERM)
    assert rig.sender.run() is False
    assert rig.transmitter.sent == list(range(8)), "the datagram being sent leaves; no other one"
    assert rig.lines("received SIGTERM, stopping")
    assert (rig.kernel.clock - rig.t0) == 7 * rig.interval, "it stops at once, not at the next slot"


def test_a_stop_signal_ends_a_long_wait_at_once():
    rig = Rig(interval=30.0)
    rig.stop_at(rig.t0 + 123 * MS, signal.SIGHUP)
    assert rig.sender.run() is False
    assert rig.kernel.clock == rig.t0 + 123 * MS and rig.transmitter.sent == [0]
    assert rig.lines("received SIGHUP, stopping")


def test_a_sigusr1_storm_gives_one_summary_a_second_and_never_hides_a_stop():
    rig = Rig(interval=0.01)
    when: List[int] = []
    rig.loop.summary_hooks.append(lambda: when.append((rig.kernel.clock - rig.t0) // MS))
    for ms in range(5, 3500, 3):  # every 3 ms for 3.5 s, between and on the ticks
        rig.kernel.at(rig.t0 + ms * MS, lambda: rig.signals.raise_(signal.SIGUSR1))
    rig.stop_at(rig.t0 + 3200 * MS)
    assert rig.sender.run() is False
    # The first request at once; the ones within the next second merged into
    # one summary a second later, which the loop wakes for (tolerance 0).
    assert when == [5, 1005, 2005, 3005], when
    assert len(rig.lines("summary:")) == 4
    assert rig.lines("received SIGTERM, stopping")
    assert len(rig.transmitter.sent) == 320, "slots 0 to 319: the stop, due with slot 320, comes first"


def test_a_deferred_summary_comes_even_when_no_other_signal_does():
    rig = Rig(interval=10.0)
    when: List[int] = []
    rig.loop.summary_hooks.append(lambda: when.append((rig.kernel.clock - rig.t0) // MS))
    for ms in (100, 200, 300):
        rig.kernel.at(rig.t0 + ms * MS, lambda: rig.signals.raise_(signal.SIGUSR1))
    rig.stop_at(rig.t0 + 5 * SECOND)
    assert rig.sender.run() is False
    assert when == [100, 1100], "three requests: one now, the two others merged a second later"


def test_readers_are_served_between_slots_and_a_raising_one_is_logged_once():
    rig = Rig(interval=0.1, count=10)
    sock = FakeSocket(2000)
    rig.kernel.sources[sock.fd] = sock
    served: List[int] = []

    def on_readable() -> None:
        served.append((rig.kernel.clock - rig.t0) // MS)
        sock.queue.pop(0)
        raise RuntimeError("bad datagram")

    rig.loop.add_reader(sock, on_readable)
    for ms in (50, 150, 250, 330):
        rig.kernel.at(rig.t0 + ms * MS, lambda: sock.queue.append(b"reply"))
    assert rig.sender.run() is True
    assert served == [50, 150, 250, 330]
    assert rig.transmitter.sent == list(range(10)), "a raising reader does not disturb the sends"
    errors = rig.lines("RuntimeError: bad datagram")
    assert len(errors) == 1 and "occurrence 1" in errors[0]


def test_the_slot_comes_before_a_reader_ready_at_the_same_time():
    rig = Rig(interval=0.1, count=3)
    sock = FakeSocket(2000)
    rig.kernel.sources[sock.fd] = sock
    order: List[str] = []
    rig.loop.add_reader(sock, lambda: (order.append("reader"), sock.queue.clear()))
    rig.sender.sent_hooks.append(lambda sequence, sent_ns: order.append(f"send {sequence}"))
    rig.kernel.at(rig.t0 + 100 * MS, lambda: sock.queue.append(b"reply"))
    assert rig.sender.run() is True
    assert order == ["send 0", "send 1", "reader", "send 2"]


def test_failed_sends_make_one_outage_and_never_use_a_sequence_number_twice():
    rig = Rig(interval=0.01, count=20)
    for k, failing in ((5, True), (10, False)):
        rig.transmitter.on_send[k] = lambda failing=failing: setattr(rig.transmitter, "failing", failing)
    assert rig.sender.run() is True
    counters = rig.sender.counters
    # Sends 5 to 9 fail, all with sequence number 5, which the next success takes.
    assert (counters.sent, counters.failed) == (15, 5)
    assert rig.transmitter.sent == list(range(15))
    assert len(rig.lines("send failed")) == 1 and len(rig.lines("sending resumed after 5 failed")) == 1
    # The interface is looked at again on the first success after the outage.
    assert rig.watch.checks == 5 + 1


def test_a_raising_job_is_logged_and_the_loop_carries_on():
    rig = Rig(interval=0.1, count=25)
    ran: List[int] = []

    def job(now: float) -> None:
        ran.append(1)
        raise ValueError("job failed")

    rig.loop.add_timer(0.5, job)
    assert rig.sender.run() is True
    assert len(ran) == 4 and rig.transmitter.sent == list(range(25))
    assert len(rig.lines("timer: ValueError: job failed")) == 1


def test_linger_serves_readers_until_done_or_the_time_is_up():
    rig = Rig(interval=0.1, count=1)
    sock = FakeSocket(2000)
    rig.kernel.sources[sock.fd] = sock
    got: List[int] = []
    rig.loop.add_reader(sock, lambda: got.append(len(sock.queue.pop(0))))
    rig.kernel.at(rig.t0 + 300 * MS, lambda: sock.queue.append(b"12345"))
    assert rig.sender.run() is True
    rig.loop.linger(1.0, lambda: bool(got))
    assert got == [5] and rig.kernel.clock == rig.t0 + 300 * MS, "done() ends it at once"
    rig.loop.linger(1.0, lambda: False)
    assert rig.kernel.clock == rig.t0 + 1300 * MS, "otherwise the time does"
    rig.stop_at(rig.kernel.clock + 10 * MS)
    rig.loop.linger(1.0, lambda: False)
    assert rig.kernel.clock == rig.t0 + 1310 * MS, "and a stop signal at once"


def test_the_summary_counts_what_the_run_did_on_the_loop_s_clock():
    rig = Rig(interval=0.25, count=9)
    assert rig.sender.run() is True
    rig.loop.log_summary()
    [line] = rig.lines("summary:")
    assert "summary: 9 sent, 0 failed, 0 slots skipped, 0 errors reported after sending, run time 2.000 s" in line


# KernelWait: the real timer and select(), on real time (short waits).

def test_kernel_wait_arms_the_timer_once_for_a_grid_and_ends_each_wait_on_it():
    kernel = KernelWait()
    armed: List[Tuple[int, int]] = []
    arm = kernel._timer.arm
    kernel._timer.arm = lambda deadline, period=0: (armed.append((deadline, period)), arm(deadline, period))
    try:
        period = 5 * MS
        start = kernel.now() + period
        for k in range(5):
            readable, _ = kernel.wait([kernel.fileno()], start + k * period, period)
            assert kernel.now() >= start + k * period and readable == [kernel.fileno()]
        assert armed == [(start, period)], "one arming for the whole grid"
        # Off the grid, or once only: armed again.
        kernel.wait([kernel.fileno()], kernel.now() + period // 2, 0)
        kernel.wait([kernel.fileno()], kernel.now() + period // 2, 0)
        assert len(armed) == 3 and armed[-1][1] == 0
        assert kernel.wait([kernel.fileno()], None, 0) == ([], []), "a poll, and the expiry was consumed"
    finally:
        kernel.close()


def test_kernel_wait_failures_are_loop_errors():
    kernel = KernelWait()
    kernel.close()
    with pytest.raises(LoopError, match="cannot wait for events"):
        kernel.wait([-5], None, 0)
    with pytest.raises(LoopError, match="cannot arm the timer"):
        kernel.wait([], time.monotonic_ns() + SECOND, 0)
