"""What every sandbox layer shares: its outcome, its failure, and prctl."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Tuple

from mping_sender.libc import check, libc


class Unavailable(Exception):
    """This layer cannot be applied on this host; the message says why."""


@dataclass(frozen=True)
class Outcome:
    """What one layer enforced: a word for the summary line, lines for debug."""

    status: str
    details: Tuple[str, ...] = ()


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); raises OSError with errno on failure."""
    args = (ctypes.c_ulong(arg) for arg in (arg2, arg3, arg4, arg5))
    return check(libc.prctl(ctypes.c_int(option), *args), f"prctl({option})")
