"""Replies from reflectors: matching, per-receiver statistics, the ping-style
summary and the JSON document. Pure: the caller hands in every datagram, the
address it came from and the clock readings, so all of it can be tested exactly.

Memory is fixed whatever arrives: send times live in a ring of the last
``window`` sequence numbers, each receiver keeps a ring of the same size for
duplicate detection, and at most ``max_receivers`` receivers are tracked.
Replies can be forged by anyone who sees a datagram, so a full table makes
room for a new address by evicting a receiver that fell silent, or else one
that has not answered consistently yet; receivers that answer consistently
are never pushed out by newcomers.
A reply whose sequence has left the window is *late*: it came back more than
``window`` datagrams after its request, its send time is forgotten, and its
datagram stays counted as lost.

The kernel drops replies here when the reply socket's buffer is full (a
reply storm, a flood). Such a reply is not a loss on the path, and the
kernel's counter cannot say whose reply it was or to which sequence. So
every sequence in the window when new drops are seen is *tainted*: a
receiver's missing reply to a tainted sequence is *unknown*, not lost. The
same holds while replies wait in the socket longer than half the silence
limit before they are read (a flood the loop cannot keep up with): a reply
read too late for its window is not late on the path. While the socket is
blind in either way, nobody falls silent and nobody stops answering
consistently (the unknown sequences do not count against it), so a flood
that overruns the socket cannot evict an established receiver.
"""

from __future__ import annotations

import enum
import math
from array import array
from collections import OrderedDict

from mping_sender import wire

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

MAX_RECEIVERS = 256
ESTABLISHED_REPLIES = 3  # with at least half of what was sent since its first reply: answers consistently
RESCAN_NS = 100_000_000  # after finding no receiver to evict, refuse newcomers unexamined this long
DROP_COUNTER_MODULUS = 2**32  # the kernel's per-socket drop counter is 32 bits and wraps
MAX_DATAGRAM = wire.HEADER_SIZE + wire.MAX_PAYLOAD_SIZE
# The RTT histogram per receiver: fixed buckets, doubling from 50 µs (the
# upper bounds 50 µs * 2**k; the 20th is about 26 s), as smokeping_prober's.
# Slower replies are counted beyond the last bucket.
RTT_BUCKET_BASE_NS = 50_000
RTT_BUCKETS = 20
NS_PER_MS = 1_000_000


class Kind(enum.Enum):
    """What one received datagram turned out to be."""

    REPLY = "reply"  # the first answer of a receiver to one of our sequences
    DUPLICATE = "duplicate"  # the same receiver answered that sequence before
    LATE = "late"  # older than the window: no send time any more
    OWN = "own"  # one of our own datagrams, looped back
    FOREIGN = "foreign"  # another sender's datagram, or a reply to another sender
    MALFORMED = "malformed"  # not an mping datagram, or a sequence we never sent
    OVERFLOW = "overflow"  # a new receiver refused: the table is full of consistent receivers


class Outcome:
    """The verdict on one datagram, for the caller's log lines."""

    __slots__ = ("kind", "sequence", "rtt_ns", "new_receiver", "out_of_order", "silent_for_ns", "evicted",
                 "reason", "ident")

    def __init__(self, kind: Kind, sequence: int = 0, rtt_ns: Optional[int] = None, reason: str = "") -> None:
        self.kind = kind
        self.sequence = sequence
        self.rtt_ns = rtt_ns
        self.new_receiver = False
        self.out_of_order = False
        self.silent_for_ns: Optional[int] = None  # set when a silent receiver answers again
        self.evicted: Optional[Receiver] = None  # the receiver dropped to make room for this new one
        self.reason = reason
        self.ident = 0  # a FOREIGN datagram's id


class SendWindow:
    """Send times of the last ``size`` datagrams, keyed by sequence number.

    The sender spends a sequence number only on a datagram it sent, so the
    sequences recorded here are contiguous. Each datagram also has an
    *index*, its count from 0, which never wraps where sequences wrap at 2^32.

    A taint (the kernel dropped replies) covers every index held at that
    moment, so the tainted indexes among those held are always the oldest
    ones, up to ``tainted_upto``: one number, no per-index state.
    ``on_tainted_leaving`` hears of each tainted index as it leaves."""

    def __init__(self, size: int, on_tainted_leaving: Optional[Callable[[int], None]] = None) -> None:
        self.size = size
        self.sent = 0  # datagrams sent, so the next index
        self.tainted_upto = -1  # the newest tainted index
        self._on_tainted_leaving = on_tainted_leaving
        self._newest_sequence = 0
        self._sent_ns = array("q", [0]) * size

    @property
    def newest(self) -> int:
        """The index of the newest datagram, -1 before the first."""
        return self.sent - 1

    def record(self, sequence: int, sent_ns: int) -> None:
        """Remember that the next datagram, ``sequence``, left at ``sent_ns``."""
        leaving = self.sent - self.size
        if 0 <= leaving <= self.tainted_upto and self._on_tainted_leaving is not None:
            self._on_tainted_leaving(leaving)
        self._sent_ns[self.sent % self.size] = sent_ns
        self._newest_sequence = sequence
        self.sent += 1

    def locate(self, sequence: int) -> Optional[int]:
        """The index of ``sequence`` (the newest one with that number), None if never sent."""
        if self.sent == 0:
            return None
        behind = (self._newest_sequence - sequence) % wire.SEQUENCE_MODULUS
        return None if behind > self.newest else self.newest - behind

    def holds(self, index: int) -> bool:
        """True while ``index`` is one of the last ``size`` indexes."""
        return self.newest - self.size < index <= self.newest

    def sent_ns(self, index: int) -> int:
        """When ``index`` was sent (``index`` must be held)."""
        return self._sent_ns[index % self.size]

    def held_since(self, index: int) -> range:
        """Indexes in the window from ``index`` on."""
        return range(max(index, self.newest - self.size + 1), self.newest + 1)

    def taint(self) -> None:
        """Every index held now may have lost replies here."""
        self.tainted_upto = self.newest

    def tainted_since(self, index: int) -> range:
        """The tainted indexes in the window from ``index`` on."""
        return range(max(index, self.newest - self.size + 1), self.tainted_upto + 1)


class Receiver:
    """Everything known about one reply source address."""

    __slots__ = ("address", "first", "answered", "last_reply_ns", "highest", "received", "duplicates",
                 "out_of_order", "late", "unknown", "rtt_min", "rtt_max", "rtt_sum", "rtt_sum_squares",
                 "rtt_buckets", "silent")

    def __init__(self, address: str, first: int, answered: array, last_reply_ns: int) -> None:
        self.address = address
        self.first = first  # index of the earliest sequence it answered
        self.answered = answered
        self.last_reply_ns = last_reply_ns
        self.highest = -1
        self.received = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.late = 0
        self.unknown = 0  # unanswered tainted sequences that left the window: maybe dropped here, not lost
        self.rtt_min = 0
        self.rtt_max = 0
        self.rtt_sum = 0
        self.rtt_sum_squares = 0
        # replies per bucket (not cumulative); the last one counts the replies above every bound
        self.rtt_buckets = array("q", [0]) * (RTT_BUCKETS + 1)
        self.silent = False

    def has_answered(self, index: int) -> bool:
        return self.answered[index % len(self.answered)] == index

    def add_rtt(self, rtt_ns: int) -> None:
        if self.received == 1 or rtt_ns < self.rtt_min:
            self.rtt_min = rtt_ns
        self.rtt_max = max(self.rtt_max, rtt_ns)
        self.rtt_sum += rtt_ns
        self.rtt_sum_squares += rtt_ns * rtt_ns
        # the first bucket whose bound 50 µs * 2**k is at least rtt_ns
        self.rtt_buckets[min(((max(rtt_ns, 1) - 1) // RTT_BUCKET_BASE_NS).bit_length(), RTT_BUCKETS)] += 1


class Totals:
    """Counts over every datagram the reply socket read, and the ones the
    kernel dropped here before it could (``kernel_dropped``)."""

    __slots__ = ("replies", "duplicates", "late", "own", "foreign", "malformed", "overflow", "evicted",
                 "kernel_dropped")

    def __init__(self) -> None:
        self.replies = 0
        self.duplicates = 0
        self.late = 0
        self.own = 0
        self.foreign = 0
        self.malformed = 0
        self.overflow = 0
        self.evicted = 0
        self.kernel_dropped = 0

    def as_dict(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Replies:
    """Matches datagrams read from the group against our sends."""

    def __init__(self, ident: int, group: str, port: int, window: int, silence_ns: int,
                 max_receivers: int = MAX_RECEIVERS, own_looped: bool = True) -> None:
        """own_looped: each datagram we send reaches the reply socket (a group
        this host is a member of loops it back), where the socket filter drops
        it and the kernel counts it among the socket's drops."""
        self.ident = ident
        self.group = group
        self.port = port
        self.window = SendWindow(window, self._tainted_leaving)
        # The sender's hook, (sequence, monotonic ns it left): the window's
        # own method, so that the send tick makes no call for the delegation.
        self.sent = self.window.record
        self.silence_ns = silence_ns
        self.max_receivers = max_receivers
        self.receivers: Dict[str, Receiver] = {}
        self._recency: "OrderedDict[str, None]" = OrderedDict()  # addresses, least recently answered first
        self._no_room_until_ns = 0
        self.totals = Totals()
        self._own_looped = own_looped
        self._drop_counter = 0  # the kernel's counter as last read (it starts at 0 with the socket)
        self.socket_drops = 0  # its increase, unwrapped: our own filtered datagrams and the kernel's drops
        self.looped_unsent = 0  # our datagrams looped back (so filtered) that then failed to leave
        self.last_blind_ns = -1  # when the socket was last seen dropping or holding replies too long (-1: never)

    def receive(self, raw: bytes, address: str, now_ns: int, waited_ns: int = 0) -> Outcome:
        """Classify and count one datagram that ``address`` sent to the group,
        read at ``now_ns`` after it waited ``waited_ns`` in the socket: it
        arrived at the difference, which the round-trip time and silence are
        measured to. (The wait comes from another clock: one that reaches
        back before the send says that clock was set meanwhile, and is not believed.)"""
        if len(raw) > MAX_DATAGRAM:
            return self._malformed(f"oversized: more than {MAX_DATAGRAM} bytes")
        try:
            datagram = wire.decode(raw)
        except wire.DecodeError as err:
            return self._malformed(str(err))
        if datagram.id != self.ident:
            self.totals.foreign += 1
            outcome = Outcome(Kind.FOREIGN, datagram.sequence, reason=datagram.type)
            outcome.ident = datagram.id
            return outcome
        if datagram.type == wire.TYPE_SENDER:
            self.totals.own += 1
            return Outcome(Kind.OWN, datagram.sequence)
        index = self.window.locate(datagram.sequence)
        if index is None:
            return self._malformed(f"seq={datagram.sequence} was never sent")
        receiver = self.receivers.get(address)
        if not self.window.holds(index):
            self.totals.late += 1
            if receiver is not None:
                receiver.late += 1
            return Outcome(Kind.LATE, datagram.sequence)
        sent_ns = self.window.sent_ns(index)
        if now_ns - waited_ns >= sent_ns:
            now_ns -= waited_ns
        outcome = Outcome(Kind.REPLY, datagram.sequence, rtt_ns=now_ns - sent_ns)
        if receiver is None:
            if len(self.receivers) >= self.max_receivers:
                evicted = self._evict(now_ns)
                if evicted is None:
                    self.totals.overflow += 1
                    return Outcome(Kind.OVERFLOW, datagram.sequence)
                outcome.evicted = evicted
            receiver = self._add_receiver(address, index, now_ns)
            outcome.new_receiver = True
        if receiver.has_answered(index):
            receiver.duplicates += 1
            self.totals.duplicates += 1
            outcome.kind = Kind.DUPLICATE
            return outcome
        self._count_reply(receiver, index, outcome, now_ns)
        return outcome

    def _malformed(self, reason: str) -> Outcome:
        self.totals.malformed += 1
        return Outcome(Kind.MALFORMED, reason=reason)

    def _add_receiver(self, address: str, index: int, now_ns: int) -> Receiver:
        receiver = Receiver(address, index, array("q", [-1]) * self.window.size, now_ns)
        self.receivers[address] = receiver
        self._recency[address] = None
        return receiver

    def established(self, receiver: Receiver) -> bool:
        """Answers consistently: ESTABLISHED_REPLIES replies or more, and at
        least half of what was sent since its first reply, not counting the
        tainted sequences (whose replies the kernel may have dropped here)."""
        tainted = receiver.unknown + len(self.window.tainted_since(receiver.first))
        return (receiver.received >= ESTABLISHED_REPLIES
                and 2 * receiver.received >= self.window.sent - receiver.first - tainted)

    def quiet_ns(self, receiver: Receiver, now_ns: int) -> int:
        """How long a receiver has been silent for sure: since its last reply,
        or since the socket was last blind, whichever is later."""
        return now_ns - max(receiver.last_reply_ns, self.last_blind_ns)

    def _evict(self, now_ns: int) -> Optional[Receiver]:
        """Make room: drop the receiver that answered least recently if it is
        silent, else the least recent one that is not established; None when
        every receiver is established and answering (then newcomers are
        refused, unexamined for RESCAN_NS, so a flood of new addresses costs
        no more than one scan of the table every RESCAN_NS)."""
        if now_ns < self._no_room_until_ns:
            return None
        for address in self._recency:
            receiver = self.receivers[address]
            if self.quiet_ns(receiver, now_ns) > self.silence_ns or not self.established(receiver):
                del self.receivers[address], self._recency[address]
                self.totals.evicted += 1
                return receiver
        self._no_room_until_ns = now_ns + RESCAN_NS
        return None

    def _count_reply(self, receiver: Receiver, index: int, outcome: Outcome, now_ns: int) -> None:
        if index < receiver.first:  # an earlier sequence overtaken by its successor
            receiver.first = index
        receiver.answered[index % self.window.size] = index
        receiver.received += 1
        self.totals.replies += 1
        if index < receiver.highest:
            receiver.out_of_order += 1
            outcome.out_of_order = True
        receiver.highest = max(receiver.highest, index)
        assert outcome.rtt_ns is not None
        receiver.add_rtt(outcome.rtt_ns)
        if receiver.silent:
            receiver.silent = False
            outcome.silent_for_ns = now_ns - receiver.last_reply_ns
        receiver.last_reply_ns = now_ns
        self._recency.move_to_end(receiver.address)

    def observe_drops(self, counter: int, now_ns: int) -> int:
        """A reading of the reply socket's drop counter (SO_RXQ_OVFL, or
        SO_MEMINFO); return how many new kernel drops it shows.

        The counter also counts our own datagrams, which the socket filter
        drops: the kernel's drops are what is left once every datagram sent
        so far is taken off. Readings can arrive out of order (the counter
        of a queued datagram is from when it was queued), so an older one is
        ignored; and a reading taken while our last datagrams are still on
        their way to the socket comes out low, so the figure only ever grows."""
        increase = (counter - self._drop_counter) % DROP_COUNTER_MODULUS
        if increase >= DROP_COUNTER_MODULUS // 2:  # older than the last reading
            return 0
        self._drop_counter = counter
        self.socket_drops += increase
        dropped = self.socket_drops - (self.window.sent + self.looped_unsent if self._own_looped else 0)
        new = dropped - self.totals.kernel_dropped
        if new <= 0:
            return 0
        self.totals.kernel_dropped = dropped
        self._blind(now_ns)
        return new

    def observe_wait(self, waited_ns: int, now_ns: int) -> bool:
        """A datagram waited ``waited_ns`` in the socket before it was read;
        True when that is long enough to blind the socket (half the silence
        limit: replies that arrived in time could be read too late)."""
        if 2 * waited_ns <= self.silence_ns:
            return False
        self._blind(now_ns)
        return True

    def _blind(self, now_ns: int) -> None:
        """Replies may have been lost here: taint the window, and let nobody fall silent for now."""
        self.last_blind_ns = now_ns
        self.window.taint()

    def _tainted_leaving(self, index: int) -> None:
        """A tainted index leaves the window: whoever did not answer it has an unknown reply."""
        for receiver in self.receivers.values():
            if receiver.first <= index and not receiver.has_answered(index):
                receiver.unknown += 1

    def fell_silent(self, now_ns: int) -> List[Receiver]:
        """Receivers silent for longer than the silence limit, once each
        (quiet_ns: while the socket is blind, nobody falls silent).
        The least recently answered come first: the look ends at the first
        receiver that answered within the limit (it runs every interval)."""
        found = []
        for address in self._recency:
            receiver = self.receivers[address]
            if self.quiet_ns(receiver, now_ns) <= self.silence_ns:
                break
            if not receiver.silent:
                receiver.silent = True
                found.append(receiver)
        return found

    def settled(self) -> bool:
        """True when every answering receiver has answered our newest datagram
        (so there is nothing left to wait for after the last one)."""
        active = [r for r in self.receivers.values() if not r.silent]
        return bool(active) and all(r.has_answered(self.window.newest) for r in active)

    def complete(self) -> bool:
        """True when at least one receiver answered every datagram we sent."""
        sent = self.window.sent
        return sent > 0 and any(r.received == sent for r in self.receivers.values())

    def report(self, final: bool) -> dict:
        """Statistics as plain data: the JSON document, and the source of the text.

        Mid-run, datagrams still in the window that a receiver has not answered
        yet are *pending*, not lost; in the final report they are lost, or
        *unknown* where tainted."""
        return {
            "group": self.group,
            "port": self.port,
            "id": self.ident,
            "sent": self.window.sent,
            "receivers": [self._receiver_report(r, final) for r in self.receivers.values()],
            "totals": dict(self.totals.as_dict(), receivers=len(self.receivers)),
        }

    def unanswered(self, receiver: Receiver, final: bool) -> Tuple[int, int, int]:
        """(pending, unknown, lost): of what was sent since its first reply
        and not answered, what may still be answered within the window, what
        the kernel may have dropped here, and what is lost (a count that only
        grows while the receiver is tracked)."""
        pending = 0 if final else sum(1 for i in self.window.held_since(receiver.first)
                                      if not receiver.has_answered(i))
        unknown = receiver.unknown
        if final:
            unknown += sum(1 for i in self.window.tainted_since(receiver.first) if not receiver.has_answered(i))
        return pending, unknown, max(0, self.window.sent - receiver.first - pending - unknown - receiver.received)

    def _receiver_report(self, receiver: Receiver, final: bool) -> dict:
        expected = self.window.sent - receiver.first
        pending, unknown, lost = self.unanswered(receiver, final)
        settled = expected - pending - unknown
        return {
            "address": receiver.address,
            "first_sequence": receiver.first % wire.SEQUENCE_MODULUS,
            "expected": expected,
            "received": receiver.received,
            "pending": pending,
            "lost": lost,
            "unknown": unknown,
            "loss_percent": round(100.0 * lost / settled, 3) if settled > 0 else 0.0,
            "duplicates": receiver.duplicates,
            "out_of_order": receiver.out_of_order,
            "late": receiver.late,
            "silent": receiver.silent,
            "rtt_ms": _rtt(receiver),
        }


def _rtt(receiver: Receiver) -> Optional[Dict[str, float]]:
    """min/avg/max/mdev in milliseconds, mdev as ping computes it."""
    n = receiver.received
    if n == 0:
        return None
    mean = receiver.rtt_sum / n
    variance = max(0.0, receiver.rtt_sum_squares / n - mean * mean)
    return {name: round(value / NS_PER_MS, 3) for name, value in
            (("min", receiver.rtt_min), ("avg", mean), ("max", receiver.rtt_max), ("mdev", math.sqrt(variance)))}


def summary_lines(report: dict) -> List[str]:
    """The report in ping's style: a block per receiver, then the totals."""
    lines = []
    for r in report["receivers"]:
        lines.append(f"--- {r['address']} mping statistics ---")
        pending = f", {r['pending']} pending" if r["pending"] else ""
        silent = ", silent" if r["silent"] else ""
        unknown = f", {r['unknown']} unknown (replies dropped here?)" if r["unknown"] else ""
        lines.append(f"{r['expected']} datagrams transmitted since its first reply (seq={r['first_sequence']}), "
                     f"{r['received']} received, +{r['duplicates']} duplicates, {r['out_of_order']} out of order, "
                     f"{r['late']} late{pending}{unknown}, {r['loss_percent']:g}% loss{silent}")
        rtt = r["rtt_ms"]
        if rtt is not None:
            lines.append(f"rtt min/avg/max/mdev = {rtt['min']:.3f}/{rtt['avg']:.3f}/{rtt['max']:.3f}/"
                         f"{rtt['mdev']:.3f} ms")
    t = report["totals"]
    lines.append(f"--- [{report['group']}]:{report['port']} mping totals ---")
    lines.append(f"{report['sent']} datagrams transmitted, {t['receivers']} receivers, {t['replies']} replies, "
                 f"+{t['duplicates']} duplicates, {t['late']} late; ignored {t['own']} own, {t['foreign']} foreign; "
                 f"dropped {t['malformed']} malformed, {t['overflow']} over the receiver limit, "
                 f"{t['kernel_dropped']} by the kernel (receive buffer full); "
                 f"{t['evicted']} receivers evicted")
    return lines
