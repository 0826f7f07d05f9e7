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
    """Which slot to send now, and how many were passed over to get there."""

    slot: int
    skipped: int


def catch_up(t0: float, interval: float, slot: int, now: float) -> Catchup:
    """Skip the slots missed while the process was stopped or stalled.

    A slot that is due is sent as long as it is less than one interval late.
    Once the process is a whole period or more behind, every slot that is
    already older than one period is skipped, so the sender resumes on the
    grid with the most recent slot and never sends a burst to catch up.
    """
    late = now - deadline(t0, interval, slot)
    if late < interval:
        return Catchup(slot, 0)
    skipped = math.floor(late / interval)
    return Catchup(slot + skipped, skipped)


def next_due(due: float, period: float, now: float) -> float:
    """The first time on the grid ``due + k * period`` that is after ``now``
    (for periodic jobs, which never run twice to catch up)."""
    return due + (math.floor((now - due) / period) + 1) * period


def timeout_until(due: float, now: float) -> float:
    """Seconds to wait for ``due``; never negative."""
    return max(0.0, due - now)
