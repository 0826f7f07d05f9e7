"""Scheduling arithmetic in integer nanoseconds, the sender's unit: an
absolute grid, how missed slots are skipped, and when the loop wakes."""

from __future__ import annotations

import math
from types import SimpleNamespace

from mping_sender import schedule

MS = 1_000_000


def test_deadlines_are_exact_multiples_of_the_interval_however_long_the_run():
    t0, interval = 123_456_789, 3 * MS
    assert schedule.deadline(t0, interval, 0) == t0
    assert schedule.deadline(t0, interval, 10**12) == t0 + 3 * 10**18  # 95 years of slots, to the nanosecond


def test_on_time_or_slightly_late_slot_is_sent_on_the_same_grid():
    assert schedule.catch_up(0, 1000, 5, 5000) == (5, 0)
    assert schedule.catch_up(0, 1000, 5, 5999) == (5, 0)


def test_a_whole_period_behind_skips_to_the_next_slot_of_the_original_grid():
    assert schedule.catch_up(0, 1000, 5, 6000) == (6, 1)  # slot 6 is due now
    assert schedule.catch_up(0, 1000, 5, 15_500) == (16, 11)  # slot 16 is due in half an interval


def test_the_arithmetic_is_exact_however_long_the_run():
    # A float quotient would round 2**60 + 1/3 down to 2**60 and resume on a
    # slot already past; in integers the slots are exact multiples.
    t0, interval = 1_000, 3
    now = t0 + 3 * 2**60 + 1
    slot, skipped = schedule.catch_up(t0, interval, 0, now)
    assert (slot, skipped) == (2**60 + 1, 2**60 + 1)
    assert schedule.deadline(t0, interval, slot - 1) < now <= schedule.deadline(t0, interval, slot)
    assert schedule.next_due(t0, interval, now) == schedule.deadline(t0, interval, slot)


def test_after_stalls_of_any_length_and_phase_the_grid_never_moves_and_there_is_no_burst():
    # Many stalls one after the other: a slot less than an interval late is
    # sent late; after a longer stall, sending resumes on t0 + k * interval
    # (re-anchoring would add the phase of each stall), not in the past, and
    # less than one interval away.
    t0, interval, slot = 10 * MS, 250 * MS, 3
    for stall in (1, 137 * MS, interval, 3 * interval, 3 * interval - 1, 12_345_678_901):
        now = schedule.deadline(t0, interval, slot) + stall
        resume, skipped = schedule.catch_up(t0, interval, slot, now)
        due = schedule.deadline(t0, interval, resume)
        if stall < interval:
            assert (resume, skipped) == (slot, 0)
        else:
            assert (due - t0) % interval == 0 and now <= due < now + interval and skipped == resume - slot
        slot = resume + 1


def Job(due: float, tolerance: int) -> SimpleNamespace:
    """A periodic job as wake() sees it."""
    return SimpleNamespace(due=due, tolerance=tolerance)


def test_wake_rides_periodic_jobs_on_the_send_tick():
    # A job due before the slot that can wait until the slot costs no wake-up.
    assert schedule.wake(10_000, [Job(9_600, 500), Job(10_000, 0), Job(12_000, 0), Job(math.inf, 0)]) == 10_000
    # One that cannot wait that long wakes the loop at its own time.
    assert schedule.wake(10_000, [Job(9_600, 500), Job(8_000, 1_000), Job(9_000, 500)]) == 8_000
    assert schedule.wake(10_000, []) == 10_000


def test_next_due_stays_on_the_grid_and_skips_missed_runs():
    assert schedule.next_due(10_000, 2_000, 10_000) == 12_000
    assert schedule.next_due(10_000, 2_000, 11_999) == 12_000
    assert schedule.next_due(10_000, 2_000, 17_000) == 18_000


def test_a_one_shot_is_never_due_again_until_it_says_so():
    assert schedule.next_due(10_000, math.inf, 10_000) == math.inf
    assert schedule.next_due(10_000, math.inf, 99_999) == math.inf
