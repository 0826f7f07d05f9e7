"""What every sandbox layer shares: its outcome and its failure (prctl is
in ``mping_sender.libc``, with every other C declaration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


class Unavailable(Exception):
    """This layer cannot be applied on this host; the message says why."""


@dataclass(frozen=True)
class Outcome:
    """What one layer enforced: a word for the summary line, lines for debug."""

    status: str
    details: Tuple[str, ...] = ()
