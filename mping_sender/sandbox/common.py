"""What every sandbox layer shares: its outcome and its failure (prctl is
in ``mping_sender.libc``, with every other C declaration)."""

from __future__ import annotations

from collections import namedtuple


class Unavailable(Exception):
    """This layer cannot be applied on this host; the message says why."""


class Outcome(namedtuple("Outcome", "status details", defaults=((),))):
    """What one layer enforced: a word for the summary line (``status``, str),
    lines for debug (``details``, a tuple of str). A named tuple rather than a
    dataclass, as every record of the package: importing ``dataclasses``
    costs start-up time and memory."""

    __slots__ = ()
