"""Scheduling arithmetic: an absolute, drift-free grid of send slots.

Slot k is due at ``t0 + k * interval`` on the monotonic clock. Computing every
deadline from t0 (never "last send + interval") keeps errors from adding up
however long the sender runs. Pure functions, so they can be tested exactly.
"""

from __future__ import annotations

import math
from typing import NamedTuple


def deadline(t0: float, interval: float, slot: int) -> float:
    """When slot ``slot`` is due."""
    return t0 + slot * interval


class Catchup(NamedTuple):
    """Which slot to send now, how many were passed over, and the grid's origin."""

    slot: int
    skipped: int
    t0: float


def catch_up(t0: float, interval: float, slot: int, now: float) -> Catchup:
    """Skip the slots missed while the process was stopped or stalled.

    A slot that is due is sent as long as it is less than one interval late,
    and the grid stays where it is (no drift). Once the process is a whole
    period or more behind, every missed slot is skipped and the grid is
    re-anchored so that the current slot is due now: the next datagram
    follows one full interval later, never in a burst right behind it.
    """
    late = now - deadline(t0, interval, slot)
    if late < interval:
        return Catchup(slot, 0, t0)
    skipped = math.floor(late / interval)
    return Catchup(slot + skipped, skipped, now - (slot + skipped) * interval)


def next_due(due: float, period: float, now: float) -> float:
    """The first time on the grid ``due + k * period`` that is after ``now``
    (for periodic jobs, which never run twice to catch up)."""
    return due + (math.floor((now - due) / period) + 1) * period


# For a select() timeout t, Linux may sleep up to max(t / 1000, the timer
# slack) longer to batch wake-ups (t / 200 for a niced process): 1 ms late on
# a 1 s interval. Long waits therefore stop 1% short, and the loop waits out
# the rest with a short timeout, whose slack is the timer slack alone.
LONG_WAIT = 0.05
EARLY_SHARE = 0.01


def timeout_until(due: float, now: float) -> float:
    """Seconds to ask select() for when aiming at ``due``; never negative.
    A long wait ends early, so that the kernel's slack cannot make it late."""
    remaining = due - now
    if remaining <= 0:
        return 0.0
    if remaining <= LONG_WAIT:
        return remaining
    return remaining * (1 - EARLY_SHARE)
