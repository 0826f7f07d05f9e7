"""Scheduling arithmetic: an absolute grid, and how missed slots are skipped."""

from __future__ import annotations

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


def test_on_time_or_slightly_late_slot_is_sent():
    assert schedule.catch_up(0.0, 1.0, 5, 5.0) == (5, 0)
    assert schedule.catch_up(0.0, 1.0, 5, 5.999) == (5, 0)


def test_a_whole_period_behind_skips_to_the_latest_slot():
    assert schedule.catch_up(0.0, 1.0, 5, 6.0) == (6, 1)
    assert schedule.catch_up(0.0, 1.0, 5, 15.5) == (15, 10)


def test_after_catch_up_the_slot_is_less_than_one_period_late():
    for now in (11.0, 100.0, 12345.678):
        slot, skipped = schedule.catch_up(10.0, 0.25, 3, now)
        late = now - schedule.deadline(10.0, 0.25, slot)
        assert 0 <= late < 0.25
        assert slot == 3 + skipped


def test_timeout_until_never_negative():
    assert schedule.timeout_until(10.0, 9.5) == 0.5
    assert schedule.timeout_until(10.0, 11.0) == 0.0


def test_next_due_stays_on_the_grid_and_skips_missed_runs():
    assert schedule.next_due(10.0, 2.0, 10.0) == 12.0
    assert schedule.next_due(10.0, 2.0, 11.9) == 12.0
    assert schedule.next_due(10.0, 2.0, 17.0) == 18.0
