"""The transmit socket: a UDP socket bound to the source and connected to the group.

Connected, it needs no destination per datagram: sendto() with a NULL
address is all the loop uses, and the sandbox's seccomp filter allows
nothing else, so a subverted process cannot send anywhere but the group.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import sys

from mping_sender import bpf, wire
from mping_sender.errors import HostError

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Protocol, Tuple, Union

    SockAddr = Union[Tuple[str, int], Tuple[str, int, int, int]]

    class SourceCheck(Protocol):
        """What the transmitter asks of linkwatch.SourceWatch."""

        def check(self) -> bool: ...


def family_of(address: wire.IPAddress) -> int:
    """The socket family for an address."""
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def sockaddr(address: wire.IPAddress, port: int, ifindex: int) -> SockAddr:
    """The Python socket address; IPv6 link-local addresses need the scope."""
    if address.version == 4:
        return (str(address), port)
    scope = ifindex if address.is_link_local or address.is_multicast else 0
    return (str(address), port, 0, scope)


def join(sock: socket.socket, group: wire.IPAddress, ifindex: int) -> None:
    """Join the group on the interface with this index."""
    if group.version == 4:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4si", group.packed, bytes(4), ifindex))
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, struct.pack("16sI", group.packed, ifindex))


def keep_on_host(sock: socket.socket, group: wire.IPAddress, ifindex: int) -> None:
    """For TTL 0: make this host a member of the group on the interface.

    Linux keeps a multicast datagram with TTL / hop limit 0 on the host
    (loops it back to the members, then drops it) only when the host is a
    member of its group on the outgoing interface; with no member it sends
    it on the wire with TTL 0, where any host on the link accepts it. The
    reply socket's membership used to be the only one, so 0 worked with
    replies and leaked with --no-replies. This membership lasts the whole
    run whatever else joins or leaves; the socket is connected to the
    group, so it receives nothing through it."""
    join(sock, group, ifindex)


def set_interface(sock: socket.socket, group: wire.IPAddress, ifindex: int) -> None:
    """Send multicast out of the interface with this index."""
    if group.version == 4:
        # struct ip_mreqn: multiaddr, address, ifindex; Linux picks by index.
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", bytes(4), bytes(4), ifindex))
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)


IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # Linux values; older Pythons lack the names
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err, then the offender's sockaddr
ERRQUEUE_DRAIN = 64  # errors read per wake-up
_ERR_ANCILLARY = socket.CMSG_SPACE(_EXTENDED_ERR.size + 28)


def open_socket(group: wire.IPAddress, ifindex: int, ttl: int) -> socket.socket:
    """A non-blocking UDP socket with the multicast options of the original.

    IP_RECVERR / IPV6_RECVERR make the counts honest: without them the
    kernel reports a datagram dropped by a full qdisc (ENOBUFS) as sent,
    and queues nothing for ICMP errors; with them the send fails, and later
    errors (ICMP) wait in the error queue, which ``drain_errors`` empties.

    A filter drops every datagram that would be queued for reading: the loop
    reads only the error queue (which no filter sees), so a datagram from a
    connected unicast peer (--allow-unicast) would stay queued for good and
    keep select() reporting the socket readable: a busy loop."""
    sock = socket.socket(family_of(group), socket.SOCK_DGRAM)
    sock.setblocking(False)
    bpf.attach(sock, bpf.DROP_ALL)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if group.version == 4:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if ttl > 0:  # IP_TTL refuses 0 (EINVAL); it only matters for unicast, where config refuses 0
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    set_interface(sock, group, ifindex)
    return sock


class AddressNotAvailable(HostError):
    """No candidate address can be bound (yet): tentative, or not on the host."""


def bind_first(sock: socket.socket, candidates: Iterable[wire.IPAddress], port: int, ifindex: int) -> wire.Endpoint:
    """Bind to the first candidate the kernel accepts; return the bound endpoint.

    An address can be listed on the interface yet not usable (IPv6 duplicate
    address detection still running), so "first usable" means "binds".
    """
    tried = []
    for address in candidates:
        try:
            sock.bind(sockaddr(address, port, ifindex))
        except OSError as err:
            if err.errno != errno.EADDRNOTAVAIL:
                raise HostError(f"cannot bind to [{address}]:{port}: {err.strerror}") from None
            tried.append(str(address))
            continue
        return address, sock.getsockname()[1]
    if not tried:
        raise HostError("no source address to bind to")
    raise AddressNotAvailable(f"address not available on this host: {', '.join(tried)}")


def connect(sock: socket.socket, group: wire.IPAddress, port: int, ifindex: int) -> None:
    """Fix the destination for good (before the sandbox forbids connect())."""
    try:
        sock.connect(sockaddr(group, port, ifindex))
    except OSError as err:
        raise HostError(f"cannot send to [{group}]:{port}: {err.strerror}") from None


def attach(sock: socket.socket, group: wire.IPAddress, port: int, ifindex: int,
           candidates: Iterable[wire.IPAddress], bind_port: int) -> wire.Endpoint:
    """Make an open_socket() the transmit socket: out of the interface, bound
    to the first usable candidate, connected to the group. Returns the source;
    AddressNotAvailable when no candidate can be bound yet (nothing connected)."""
    set_interface(sock, group, ifindex)
    source = bind_first(sock, candidates, bind_port, ifindex)
    connect(sock, group, port, ifindex)
    return source


def parse_extended_error(ancillary) -> Optional[Tuple[int, str]]:
    """(errno, offender address or '') from the ancillary data of one
    MSG_ERRQUEUE read; None when it holds no extended error."""
    for level, kind, data in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)) \
                and len(data) >= _EXTENDED_ERR.size:
            code = _EXTENDED_ERR.unpack_from(data)[0]
            offender = data[_EXTENDED_ERR.size:]
            family = int.from_bytes(offender[:2], sys.byteorder) if len(offender) >= 2 else 0
            if family == socket.AF_INET and len(offender) >= 8:
                return code, str(ipaddress.IPv4Address(offender[4:8]))
            if family == socket.AF_INET6 and len(offender) >= 24:
                return code, str(ipaddress.IPv6Address(offender[8:24]))
            return code, ""
    return None


def drain_errors(sock: socket.socket) -> List[Tuple[int, str]]:
    """Errors the kernel reported after datagrams left (ICMP unreachable, ...),
    at most ERRQUEUE_DRAIN, never blocking; then whatever pending socket
    error is left (SO_ERROR reads and clears it), so that select() stops
    reporting the socket and the next send is not refused for an old error."""
    found = []
    for _ in range(ERRQUEUE_DRAIN):
        try:
            _, ancillary, _, _ = sock.recvmsg(1, _ERR_ANCILLARY, MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            break
        error = parse_extended_error(ancillary)
        if error is not None:
            found.append(error)
    pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if pending:
        found.append((pending, ""))
    return found


class Transmitter:
    """The connected transmit socket, aimed at its interface for good before
    the sandbox (no socket option can be set after it)."""

    def __init__(self, sock: socket.socket, source: Optional[SourceCheck] = None) -> None:
        self.sock = sock
        self._source = source  # linkwatch.SourceWatch, for an IPv6 source
        self.source_usable = True

    def send(self, datagram: bytearray) -> None:
        """Send one datagram; OSError when the kernel refuses it, or when the
        bound source address is not usable (the kernel would send from it
        anyway: an outage, counted as such). While it is not, it is looked
        up again before every send, so that sending resumes at once."""
        if not self.source_usable and not self.check_source():
            raise OSError(errno.EADDRNOTAVAIL, "the bound source address is not usable")
        self.sock.send(datagram)

    def check_source(self) -> bool:
        """Look the source address up again (the loop's once-a-second job
        does, after the send of its tick); True while it is usable."""
        if self._source is not None:
            self.source_usable = self._source.check()
        return self.source_usable
