"""Scheduling arithmetic: an absolute grid, and how missed slots are skipped."""

from __future__ import annotations

from types import SimpleNamespace

from mping_sender import schedule


def test_deadlines_are_absolute_and_do_not_accumulate_error():
    t0, interval = 1000.0, 0.001
    assert schedule.deadline(t0, interval, 0) == t0
    # One million slots later, the deadline is t0 + 1000 s to the microsecond,
    # whereas adding 0.001 a million times drifts.
    assert abs(schedule.deadline(t0, interval, 1_000_000) - 2000.0) < 1e-6
    summed = t0
    for _ in range(1_000_000):
        summed += interval
    assert abs(summed - 2000.0) > abs(schedule.deadline(t0, interval, 1_000_000) - 2000.0)


def test_on_time_or_slightly_late_slot_is_sent_on_the_same_grid():
    assert schedule.catch_up(0.0, 1.0, 5, 5.0) == (5, 0)
    assert schedule.catch_up(0.0, 1.0, 5, 5.999) == (5, 0)


def test_a_whole_period_behind_skips_to_the_next_slot_of_the_original_grid():
    assert schedule.catch_up(0.0, 1.0, 5, 6.0) == (6, 1)  # slot 6 is due now
    assert schedule.catch_up(0.0, 1.0, 5, 15.5) == (16, 11)  # slot 16 is due in 0.5 s


def test_in_integer_nanoseconds_the_arithmetic_is_exact_however_long_the_run():
    # The sender's unit. A float quotient would round 2**60 + 1/3 down to
    # 2**60 and resume on a slot already past; slots are exact multiples.
    t0, interval = 1_000, 3
    now = t0 + 3 * 2**60 + 1
    slot, skipped = schedule.catch_up(t0, interval, 0, now)
    assert (slot, skipped) == (2**60 + 1, 2**60 + 1)
    assert schedule.deadline(t0, interval, slot - 1) < now <= schedule.deadline(t0, interval, slot)
    assert schedule.next_due(t0, interval, now) == schedule.deadline(t0, interval, slot)


def test_after_a_stall_the_grid_never_moves_and_there_is_no_burst():
    # Whatever the phase of the stall, the slot sending resumes with lies on
    # t0 + k * interval, is not in the past, and is at most one interval away.
    t0, interval = 10.0, 0.25
    for now in (11.0, 100.0, 12345.678, 11.74, 11.0000001):
        slot, skipped = schedule.catch_up(t0, interval, 3, now)
        assert skipped >= 1 and slot == 3 + skipped
        due = schedule.deadline(t0, interval, slot)
        assert now - 1e-9 <= due < now + interval


def test_a_stall_of_any_length_never_reanchors():
    # Many stalls one after the other: every resumption is still on the grid
    # of the first datagram (re-anchoring would add the phase of each stall).
    t0, interval, slot, now = 0.0, 0.01, 0, 0.0
    for stall in (0.0137, 0.5, 0.0251, 3.33333, 0.01):
        now = schedule.deadline(t0, interval, slot) + stall
        slot, _ = schedule.catch_up(t0, interval, slot, now)
        position = (schedule.deadline(t0, interval, slot) - t0) / interval
        assert abs(position - round(position)) < 1e-6


def Job(due: float, tolerance: float) -> SimpleNamespace:
    """A periodic job as wake() sees it."""
    return SimpleNamespace(due=due, tolerance=tolerance)


def test_wake_rides_periodic_jobs_on_the_send_tick():
    # A job due before the slot that can wait until the slot costs no wake-up.
    assert schedule.wake(10.0, [Job(9.6, 0.5), Job(10.0, 0.0), Job(12.0, 0.0)]) == 10.0
    # One that cannot wait that long wakes the loop at its own time.
    assert schedule.wake(10.0, [Job(9.6, 0.5), Job(8.0, 1.0), Job(9.0, 0.5)]) == 8.0
    assert schedule.wake(10.0, []) == 10.0


def test_next_due_stays_on_the_grid_and_skips_missed_runs():
    assert schedule.next_due(10.0, 2.0, 10.0) == 12.0
    assert schedule.next_due(10.0, 2.0, 11.9) == 12.0
    assert schedule.next_due(10.0, 2.0, 17.0) == 18.0
