"""The reply socket and its place in the loop: reads reflector replies from
the group, feeds them to the pure statistics in ``reply_stats``, logs, and writes
the summary and the JSON document."""

from __future__ import annotations

import errno
import socket
import struct
import time

from mping_sender import bpf, reply_stats, transmit, wire
from mping_sender.errors import HostError, os_error_text
from mping_sender.eventloop import EventLoop
from mping_sender.log import TRACE, INFO, WARNING
from mping_sender.ratelimit import LogLimit
from mping_sender.sender import Sender

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Optional, Tuple

    from mping_sender.log import Logger

DRAIN_LIMIT = 64  # datagrams read per wake-up, so a flood cannot starve the sender
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux values; Python lacks the names
IPV6_MULTICAST_ALL = getattr(socket, "IPV6_MULTICAST_ALL", 29)
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux (a 32-bit one is not decoded: no wait reading)
_U32, _I32 = struct.Struct("I"), struct.Struct("i")
_MEMINFO = struct.Struct("9I")  # u32 sk_meminfo[SK_MEMINFO_VARS]; the drop counter is the last
_ANCILLARY_SIZE = 2 * socket.CMSG_SPACE(4) + socket.CMSG_SPACE(_TIMESPEC.size)  # TTL, drop counter, arrival
# The receive buffer holds this many replies from every receiver the table
# can track, so that all of them answering at once (a reply storm) fit while
# the loop is busy. No more: under a flood, whatever the buffer holds is
# read at the send path's expense (with four, a loaded machine sent up to
# half as many datagrams during a fuzzing flood as with the default
# buffer), and what it cannot hold the kernel drops and counts. What the kernel charges for one queued datagram (its
# "truesize") is its length plus about a kilobyte of bookkeeping: 1280 bytes
# for a 288-byte reply on a veth.
REPLIES_PER_RECEIVER = 2
QUEUED_OVERHEAD = 1024
LINE_GAP_NS = 1_000_000_000  # at most a line a second about a blind socket, of each kind


def receive_buffer_wanted(max_receivers: int, datagram_size: int) -> int:
    """The receive buffer (as the kernel counts it) that holds
    REPLIES_PER_RECEIVER replies of this size from every receiver."""
    return max_receivers * REPLIES_PER_RECEIVER * (datagram_size + QUEUED_OVERHEAD)


def grow_receive_buffer(sock: socket.socket, wanted: int) -> int:
    """Ask for a receive buffer of ``wanted`` bytes unless it is that large
    already; return what the kernel gave. The kernel doubles the request
    (its bookkeeping) after capping it at net.core.rmem_max, without an
    error: the answer is read back, not assumed."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < wanted:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, (wanted + 1) // 2)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def open_group_socket(group: wire.IPAddress, port: int, ifindex: int) -> socket.socket:
    """A non-blocking socket bound to the group's port on the wildcard address
    and joined to the group on the interface; it reports each datagram's TTL
    the kernel's count of the socket's drops (SO_RXQ_OVFL), and when it
    arrived (SO_TIMESTAMPNS, CLOCK_REALTIME: how long it waited to be read).

    SO_REUSEADDR lets it share the port with the transmit socket (bind port ==
    group port); *_MULTICAST_ALL off keeps out groups other sockets joined."""
    sock = socket.socket(transmit.family_of(group), socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    if group.version == 4:
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        sock.bind(("0.0.0.0", port))
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.bind(("::", port))
    if group.is_multicast:
        transmit.join(sock, group, ifindex)
    return sock


_UDP_HEADER = 8


def own_datagram_filter(ident: int) -> bytes:
    """A classic BPF program (struct sock_filter[]) that drops, in the kernel,
    our own datagrams looped back to the reply socket (type 's' with our id)
    and accepts everything else. A socket filter on a UDP socket sees the UDP
    header at offset 0. Without it every datagram would wake the loop twice."""
    return b"".join((
        bpf.op(bpf.LD | bpf.W | bpf.LEN, 0),  # A = length
        # shorter than a datagram: accept (user space counts it)
        bpf.op(bpf.JMP | bpf.JGE | bpf.K, _UDP_HEADER + wire.HEADER_SIZE, jf=5),
        bpf.op(bpf.LD | bpf.B | bpf.ABS, _UDP_HEADER + wire.TYPE_OFFSET),  # A = type byte
        bpf.op(bpf.JMP | bpf.JEQ | bpf.K, ord(wire.TYPE_SENDER), jf=3),  # not 's': accept
        # A = id (network order, as the kernel loads words)
        bpf.op(bpf.LD | bpf.W | bpf.ABS, _UDP_HEADER + wire.ID_OFFSET),
        bpf.op(bpf.JMP | bpf.JEQ | bpf.K, ident, jf=1),  # another sender: accept
        bpf.op(bpf.RET | bpf.K, bpf.DROP),  # ours
        bpf.op(bpf.RET | bpf.K, bpf.ACCEPT),
    ))


def parse_ancillary(ancillary) -> Tuple[int, Optional[int], Optional[int]]:
    """The TTL / hop limit a datagram arrived with (-1 when not reported),
    the socket's drop counter when it was queued (None when not reported:
    the kernel leaves it out until the first drop), and when it arrived
    (CLOCK_REALTIME ns; None when not reported). Once per datagram: plain
    comparisons, no tuples built."""
    ttl, drops, arrival = -1, None, None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET:
            if kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                arrival = seconds * 1_000_000_000 + nanoseconds
            elif kind == SO_RXQ_OVFL and len(data) >= 4:
                drops = _U32.unpack_from(data)[0]
        elif len(data) >= 4 and ((level == socket.IPPROTO_IP and kind == socket.IP_TTL)
                                 or (level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT)):
            ttl = _I32.unpack_from(data)[0]
    return ttl, drops, arrival


def drop_counter(sock: socket.socket) -> int:
    """The socket's drop counter now (SO_MEMINFO)."""
    return _MEMINFO.unpack(sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size))[-1]


class ReplyListener:
    """Joins the loop: a reader for the reply socket, a timer for silent
    receivers, a summary hook, and the sender's send-time hook."""

    def __init__(self, sock: socket.socket, group: wire.IPAddress, stats: reply_stats.Replies, period: float,
                 log: Logger, source: Optional[wire.Endpoint] = None) -> None:
        self._sock = sock
        self._group = group
        self.stats = stats
        self._period = period
        self._log = log
        self._final = False
        # (address, port) of our own datagrams, to recognise another sender that uses them too
        self._source = (str(source[0]), source[1]) if source is not None else None
        self._twin_logged = False
        self._counter_failed = False
        # Forged replies can make receivers appear, fall silent and return at
        # will: each kind of line is bounded, whatever the number of addresses.
        self._new = LogLimit(log, "new receivers")
        self._back = LogLimit(log, "receivers answering again")
        self._silent = LogLimit(log, "silent receivers")
        self._refused = LogLimit(log, "replies refused by the full receiver table")
        # Apart from "new receivers": a flood of those must not hide the loss of a tracked one.
        self._evicted = LogLimit(log, "established receivers evicted")
        # A blind socket is seen with every datagram of a flood: at most a
        # line a second of each kind, with what was seen since the last one
        # (the summary has the totals), before the log's own limit.
        self._dropped = LogLimit(log, "replies dropped by the kernel")
        self._unlogged_drops = 0
        self._next_drop_line_ns = 0
        self._behind = LogLimit(log, "replies read too late")
        self._longest_wait_ns = 0
        self._next_wait_line_ns = 0

    @classmethod
    def open(cls, group: wire.IPAddress, port: int, ifindex: int, ident: int, interval: float,
             timeout_periods: int, payload_size: int, source: wire.Endpoint, log: Logger) -> "ReplyListener":
        """The reply socket, ready before the sandbox (no socket option can be set afterwards)."""
        wanted = receive_buffer_wanted(reply_stats.MAX_RECEIVERS, wire.HEADER_SIZE + payload_size)
        try:
            sock = open_group_socket(group, port, ifindex)
            bpf.attach(sock, own_datagram_filter(ident))
            size = grow_receive_buffer(sock, wanted)
        except OSError as err:
            hint = " (another program holds the port; --no-replies skips the reply socket)" \
                if err.errno == errno.EADDRINUSE else ""
            raise HostError(f"cannot open the reply socket on port {port}: {os_error_text(err)}{hint}") from None
        if size * REPLIES_PER_RECEIVER < wanted:
            log.warning("reply socket: receive buffer %d KiB, less than one reply from each of %d receivers "
                        "answering at once (%d KiB; net.core.rmem_max is %d KiB): in a reply storm the kernel drops "
                        "replies here, counted as kernel drops", size // 1024, reply_stats.MAX_RECEIVERS,
                        wanted // REPLIES_PER_RECEIVER // 1024, size // 2048)
        else:
            log.debug("reply socket: receive buffer %d KiB (%d KiB asked for)", size // 1024, wanted // 1024)
        stats = reply_stats.Replies(ident, str(group), port, window=timeout_periods,
                                    silence_ns=int(timeout_periods * interval * 1e9), own_looped=group.is_multicast)
        return cls(sock, group, stats, interval, log, source)

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def attach(self, loop: EventLoop, sender: Sender) -> None:
        sender.sent_hooks.append(self.stats.sent)
        sender.failed_hooks.append(self.send_failed)
        loop.add_reader(self._sock, self.on_readable)
        loop.add_timer(self._period, self.on_timer)
        loop.summary_hooks.append(self.log_summary)

    def send_failed(self, code: int) -> None:
        """A datagram failed to leave. ENOBUFS comes from the interface's full
        queue (the qdisc, with IP_RECVERR), after the kernel looped the
        datagram back to this socket: one more of our own in its drop counter."""
        if code == errno.ENOBUFS:
            self.stats.looped_unsent += 1

    @property
    def linger_seconds(self) -> float:
        """How long a reply to the last datagram may take before it is late."""
        return self.stats.window.size * self._period

    def on_readable(self) -> None:
        """Read what is queued, at most DRAIN_LIMIT datagrams, never blocking.

        What blinds the socket is looked at once a batch, not per datagram
        (a flood's datagrams are many and mostly malformed): the drop counter
        first (SO_MEMINFO: each datagram's own is from when it was queued,
        so drops after a full queue's last datagram would show only once the
        queue is read through), the wait of the batch's first datagram (the
        oldest), and, after the batch, the counter its last datagram carried
        (SO_RXQ_OVFL)."""
        self.read_drop_counter()
        drops = None
        for n in range(DRAIN_LIMIT):
            try:
                raw, ancillary, _, peer = self._sock.recvmsg(reply_stats.MAX_DATAGRAM + 1, _ANCILLARY_SIZE)
            except BlockingIOError:
                break
            except OSError as err:
                self._log.debug("reply socket: %s", err)
                break
            # The real-time clock first: a pause between the two readings
            # can only make the arrival look later, never earlier.
            real_ns = time.time_ns()
            now_ns = time.monotonic_ns()
            ttl, drops, arrival = parse_ancillary(ancillary)
            # How long it waited to be read (the kernel stamps arrivals on the
            # real-time clock): its round-trip time and the receivers' silence
            # do not include it. 0 when unknown, or negative (the clock was set).
            waited = 0 if arrival is None else real_ns - arrival
            if n == 0 and waited > 0:
                self._observe_wait(waited, now_ns)
            self._handle(raw, peer[0].split("%")[0], peer[1], ttl, now_ns, max(0, waited))
        if drops is not None:
            self._count_drops(drops, time.monotonic_ns())

    def _observe_wait(self, waited: int, now_ns: int) -> None:
        if self.stats.observe_wait(waited, now_ns):
            self._longest_wait_ns = max(self._longest_wait_ns, waited)
            if now_ns >= self._next_wait_line_ns:
                self._behind.log(WARNING, "replies waited up to %.0f ms to be read (more than half of "
                                 "--receiver-timeout): the replies they may have been are counted as unknown, not "
                                 "lost", self._longest_wait_ns / 1e6)
                self._longest_wait_ns, self._next_wait_line_ns = 0, now_ns + LINE_GAP_NS

    def _count_drops(self, counter: int, now_ns: int) -> None:
        self._unlogged_drops += self.stats.observe_drops(counter, now_ns)
        if self._unlogged_drops and now_ns >= self._next_drop_line_ns:
            self._dropped.log(WARNING, "the kernel dropped %d replies here (the reply socket's buffer was full; "
                              "%d in all): counted as kernel drops, and the replies they may have been as unknown, "
                              "not lost", self._unlogged_drops, self.stats.totals.kernel_dropped)
            self._unlogged_drops, self._next_drop_line_ns = 0, now_ns + LINE_GAP_NS

    def read_drop_counter(self) -> None:
        """Read the socket's drop counter now: drops after the last queued datagram show only here."""
        try:
            counter = drop_counter(self._sock)
        except OSError as err:
            if not self._counter_failed:
                self._counter_failed = True
                self._log.warning("reply socket: cannot read its drop counter (SO_MEMINFO): %s; the kernel's drops "
                                  "show only with the next reply", os_error_text(err))
            return
        self._count_drops(counter, time.monotonic_ns())

    def _handle(self, raw: bytes, address: str, port: int, ttl: int, now_ns: int, waited_ns: int) -> None:
        outcome = self.stats.receive(raw, address, now_ns, waited_ns)
        kind = outcome.kind
        if kind in (reply_stats.Kind.REPLY, reply_stats.Kind.DUPLICATE):
            assert outcome.rtt_ns is not None
            time_ms = outcome.rtt_ns / reply_stats.NS_PER_MS
            if outcome.new_receiver:
                evicted = outcome.evicted
                note = "" if evicted is None else \
                    f" (evicted {evicted.address}: silent, or not answering consistently)"
                self._new.log(INFO, "new receiver %s: first reply seq=%d time=%.2f ms%s", address,
                              outcome.sequence, time_ms, note)
                if evicted is not None and evicted.received >= reply_stats.ESTABLISHED_REPLIES:
                    self._evicted.log(WARNING, "evicted receiver %s (%d replies, the last %.1f s ago) to make room "
                                      "for %s: it fell silent, or stopped answering consistently",
                                      evicted.address, evicted.received, (now_ns - evicted.last_reply_ns) / 1e9,
                                      address)
            if outcome.silent_for_ns is not None:
                self._back.log(INFO, "receiver %s answers again after %.1f s of silence",
                               address, outcome.silent_for_ns / 1e9)
            note = (" (DUP!)" if kind is reply_stats.Kind.DUPLICATE
                    else " (out of order)" if outcome.out_of_order else "")
            self._log.debug("%d bytes from %s: seq=%d ttl=%d time=%.2f ms%s",
                            len(raw), address, outcome.sequence, ttl, time_ms, note)
        elif kind is reply_stats.Kind.LATE:
            self._log.debug("%d bytes from %s: seq=%d ttl=%d late (more than %d datagrams after its request)",
                            len(raw), address, outcome.sequence, ttl, self.stats.window.size)
        elif kind is reply_stats.Kind.OVERFLOW:
            self._refused.log(WARNING, "refused a reply from %s: all %d receivers answer consistently "
                              "(forged replies?)", address, self.stats.max_receivers)
        elif kind is reply_stats.Kind.MALFORMED:
            self._log.log(TRACE, "dropped %d bytes from %s: %s", len(raw), address, outcome.reason)
        else:
            if kind is reply_stats.Kind.FOREIGN and outcome.reason == wire.TYPE_SENDER \
                    and (address, port) == self._source and not self._twin_logged:
                self._twin_logged = True
                self._log.warning("another sender (id 0x%08x) sends to [%s]:%d from our own source [%s]:%d: "
                                  "receivers can tell the two apart only by id", outcome.ident, self._group,
                                  self.stats.port, address, port)
            self._log.log(TRACE, "ignored %d bytes from %s: %s", len(raw), address, kind.value)

    def on_timer(self, now: float) -> None:
        """Read the drop counter, then log receivers that stopped answering, once each."""
        self.read_drop_counter()
        for receiver in self.stats.fell_silent(int(now * 1e9)):
            self._silent.log(INFO, "receiver %s silent for more than %d periods", receiver.address,
                             self.stats.window.size)

    def finish(self) -> None:
        """Sending and waiting are over: from now on unanswered datagrams are lost, not pending."""
        self._final = True

    def log_summary(self) -> None:
        self.read_drop_counter()
        for line in reply_stats.summary_lines(self.stats.report(final=self._final)):
            self._log.info("%s", line)

    def json_document(self) -> bytes:
        """The report as one JSON document, for the --stats-json file: final
        once finish() was called (not after a fatal error in the loop)."""
        import json  # loaded by stats_file.StatsFile.open, before the sandbox
        self.read_drop_counter()
        return json.dumps(self.stats.report(final=self._final), indent=2).encode() + b"\n"
