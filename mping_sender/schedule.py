"""Scheduling arithmetic: an absolute, drift-free grid of send slots.

Slot k is due at ``t0 + k * interval`` on the monotonic clock. Computing every
deadline from t0 (never "last send + interval") keeps errors from adding up
however long the sender runs, and the grid never moves: after a stall the
sender skips to a later slot of the same grid. Pure functions in integer
nanoseconds, the timer's own unit: every deadline is exact however long the
run. (A job that is never due has ``due`` infinity.)
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Iterable, Protocol

    class Job(Protocol):
        """What wake() reads of a periodic job (the loop's timers): when it is
        due, and how late it may run."""

        due: float
        tolerance: float


def deadline(t0: int, interval: int, slot: int) -> int:
    """When slot ``slot`` is due."""
    return t0 + slot * interval


class Catchup(namedtuple("Catchup", "slot skipped")):
    """Which slot to send next, and how many were passed over to get there (int, int)."""

    __slots__ = ()


def catch_up(t0: int, interval: int, slot: int, now: int) -> Catchup:
    """Skip the slots missed while the process was stopped or stalled.

    A slot that is due is sent as long as it is less than one interval late.
    Once the process is a whole interval or more behind, every missed slot is
    skipped and the next slot is the first one of the *original* grid that is
    not yet past: sending resumes on the grid, never in a burst, and the
    lateness of every later datagram is still measured from t0.
    """
    if now - deadline(t0, interval, slot) < interval:
        return Catchup(slot, 0)
    resume = max(slot + 1, -((t0 - now) // interval))  # the ceiling, exact in integers
    return Catchup(resume, resume - slot)


def next_due(due: float, period: float, now: int) -> float:
    """The first time on the grid ``due + k * period`` that is after ``now``
    (for periodic jobs, which never run twice to catch up; a one-shot,
    period infinity, is then never due until it sets its own time)."""
    return due + ((now - due) // period + 1) * period


def wake(slot_due: int, jobs: Iterable[Job]) -> int:
    """When the loop must wake next: at the slot, unless a periodic job
    would be more than its tolerance late by then. Jobs that can wait run on
    the tick of the slot instead, so that a periodic job costs no wake-up of
    its own."""
    wake_at = slot_due
    for job in jobs:
        if job.due < wake_at and slot_due > job.due + job.tolerance:
            wake_at = job.due
    return wake_at
