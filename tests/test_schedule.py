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


def test_on_time_or_slightly_late_slot_is_sent_on_the_same_grid():
    assert schedule.catch_up(0.0, 1.0, 5, 5.0) == (5, 0, 0.0)
    assert schedule.catch_up(0.0, 1.0, 5, 5.999) == (5, 0, 0.0)


def test_a_whole_period_behind_skips_to_the_latest_slot_and_re_anchors():
    assert schedule.catch_up(0.0, 1.0, 5, 6.0) == (6, 1, 0.0)
    slot, skipped, t0 = schedule.catch_up(0.0, 1.0, 5, 15.5)
    assert (slot, skipped) == (15, 10)
    assert schedule.deadline(t0, 1.0, slot) == 15.5  # the slot sent now is due now


def test_after_catch_up_the_next_slot_is_a_full_interval_away():
    # No burst: whatever the phase of the stall, the datagram after the
    # catch-up one is due one interval after it.
    for now in (11.0, 100.0, 12345.678, 11.74):
        slot, skipped, t0 = schedule.catch_up(10.0, 0.25, 3, now)
        assert slot == 3 + skipped and skipped >= 1
        assert abs(schedule.deadline(t0, 0.25, slot + 1) - (now + 0.25)) < 1e-9


def test_timeout_until_never_negative():
    assert schedule.timeout_until(10.0, 11.0) == 0.0
    assert schedule.timeout_until(10.0, 10.0) == 0.0


def test_short_waits_are_exact_and_long_waits_end_early():
    assert schedule.timeout_until(10.0, 9.97) == 10.0 - 9.97
    # 1 s ahead: stop 10 ms short (the kernel may add up to 1 ms to a 1 s
    # select); the next wait, 10 ms, is short enough to be exact.
    first = schedule.timeout_until(11.0, 10.0)
    assert abs(first - 0.99) < 1e-9
    second = schedule.timeout_until(11.0, 10.0 + first)
    assert abs(second - 0.01) < 1e-9 and second <= schedule.LONG_WAIT


def test_next_due_stays_on_the_grid_and_skips_missed_runs():
    assert schedule.next_due(10.0, 2.0, 10.0) == 12.0
    assert schedule.next_due(10.0, 2.0, 11.9) == 12.0
    assert schedule.next_due(10.0, 2.0, 17.0) == 18.0
