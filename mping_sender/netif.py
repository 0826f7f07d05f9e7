"""Network interfaces: index, flags and addresses of a named interface.

Index and flags come from ioctls on an existing socket, so they still work
once the sandbox forbids opening files or new sockets. Addresses are read
at start-up only.

Interface names are bytes, as the kernel has them: any byte but NUL, '/',
':' and white space, not necessarily UTF-8. They are compared as bytes and
only turned into text for messages (display_name).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import os
import socket
import struct
import sys

from mping_sender import wire

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, List, Optional, Tuple

SIOCGIFNAME = 0x8910
SIOCGIFFLAGS = 0x8913
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_MULTICAST = 0x1000


def display_name(name: bytes) -> str:
    """An interface name for messages: UTF-8 as is, other bytes as \\xNN escapes."""
    return name.decode("utf-8", "backslashreplace")


def ifreq_structs(order: str) -> Tuple[struct.Struct, struct.Struct]:
    """struct ifreq as the two ioctls fill it, in byte order ``order`` (a
    struct prefix: ``=`` native, ``<`` or ``>``): ifr_name, then the union,
    whose first member is an int for SIOCGIFINDEX and SIOCGIFNAME (ifr_ifindex) and a short
    for SIOCGIFFLAGS (ifr_flags). The flags read as an int would be right on
    little-endian machines only: on big-endian ones the short is the int's
    high half."""
    return struct.Struct(order + "16si20x"), struct.Struct(order + "16sH22x")


_IFREQ_INDEX, _IFREQ_FLAGS = ifreq_structs("=")


def _ifreq(sock: socket.socket, request: int, layout: struct.Struct, name: bytes) -> int:
    raw = fcntl.ioctl(sock.fileno(), request, layout.pack(name, 0))
    return layout.unpack(raw)[1]


def name_of(sock: socket.socket, ifindex: int) -> Optional[bytes]:
    """The name the interface with this index has now, or None when no
    interface has it (SIOCGIFNAME: ENODEV)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), SIOCGIFNAME, _IFREQ_INDEX.pack(b"", ifindex))
    except OSError as err:
        if err.errno in (errno.ENODEV, errno.ENXIO):
            return None
        raise
    return _IFREQ_INDEX.unpack(raw)[0].rstrip(b"\0")


def index(sock: socket.socket, name: bytes) -> int:
    """The interface's current index; OSError(ENODEV) when it does not exist."""
    return _ifreq(sock, SIOCGIFINDEX, _IFREQ_INDEX, name)


def flags(sock: socket.socket, name: bytes) -> int:
    """The interface's IFF_* flags (the 16 bits of ifr_flags)."""
    return _ifreq(sock, SIOCGIFFLAGS, _IFREQ_FLAGS, name)


def _unless_gone(read: Callable[[socket.socket, bytes], int], sock: socket.socket, name: bytes) -> Optional[int]:
    """read(sock, name), or None when no interface has this name (ENODEV, or
    ENXIO while it is being deleted); other errors raise."""
    try:
        return read(sock, name)
    except OSError as err:
        if err.errno in (errno.ENODEV, errno.ENXIO):
            return None
        raise


def probe(sock: socket.socket, name: bytes) -> Optional[Tuple[int, int]]:
    """The interface's index and IFF_* flags, or None when no interface has
    this name. The whole look at an interface, for start-up and for the
    watch after a failed send."""
    ifindex = _unless_gone(index, sock, name)
    found = None if ifindex is None else _unless_gone(flags, sock, name)
    return None if found is None else (ifindex, found)


def flags_if_present(sock: socket.socket, name: bytes) -> Optional[int]:
    """The interface's IFF_* flags, or None when no interface has this name."""
    return _unless_gone(flags, sock, name)


def index_if_present(sock: socket.socket, name: bytes) -> Optional[int]:
    """The interface's index, or None when no interface has this name."""
    return _unless_gone(index, sock, name)


SIOCGIFCONF = 0x8912
SIOCGIFBRDADDR = 0x8919
SIOCGIFNETMASK = 0x891B
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IF_INET6 = "/proc/self/net/if_inet6"


class _Ifmap(ctypes.Structure):
    """struct ifmap: the largest member of ifreq's union on 64-bit systems."""

    _fields_ = [("mem_start", ctypes.c_ulong), ("mem_end", ctypes.c_ulong), ("base_addr", ctypes.c_ushort),
                ("irq", ctypes.c_ubyte), ("dma", ctypes.c_ubyte), ("port", ctypes.c_ubyte)]


_IFREQ_SIZE = 16 + max(16, ctypes.sizeof(_Ifmap))  # ifr_name, then the union
_IFCONF = struct.Struct("iP")  # struct ifconf: ifc_len, ifc_buf
_MAX_IPV4 = 1024  # addresses per SIOCGIFCONF call: more than any router carries


def _label_matches(label: bytes, name: bytes) -> bool:
    """IPv4 addresses are listed by label: the interface name, or "name:alias"."""
    return label == name or label.startswith(name + b":")


def _ipv4_table(sock: socket.socket) -> List[Tuple[bytes, ipaddress.IPv4Address]]:
    """(label, address) of every IPv4 address of the host (SIOCGIFCONF), in the kernel's order."""
    buffer = ctypes.create_string_buffer(_MAX_IPV4 * _IFREQ_SIZE)
    raw = fcntl.ioctl(sock.fileno(), SIOCGIFCONF, _IFCONF.pack(len(buffer), ctypes.addressof(buffer)))
    length = _IFCONF.unpack(raw)[0]
    found = []
    for offset in range(0, length, _IFREQ_SIZE):
        entry = buffer.raw[offset:offset + _IFREQ_SIZE]
        if int.from_bytes(entry[16:18], sys.byteorder) == socket.AF_INET:
            found.append((entry[:16].rstrip(b"\0"), ipaddress.IPv4Address(entry[20:24])))
    return found


def ipv4_addresses(name: bytes) -> List[wire.IPAddress]:
    """The interface's IPv4 addresses (SIOCGIFCONF), in the kernel's order."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return Ipv4Sources(sock).addresses(name)


def _ifreq_address(sock: socket.socket, request: int, label: bytes) -> ipaddress.IPv4Address:
    """The IPv4 address an ioctl (netmask, broadcast) returns for one label."""
    raw = fcntl.ioctl(sock.fileno(), request, struct.pack("16s16x", label))
    return ipaddress.IPv4Address(raw[20:24])


def broadcast_addresses() -> List[Tuple[bytes, ipaddress.IPv4Address]]:
    """(label, address) of every IPv4 broadcast address of the host: the one
    set on each address, and the one the kernel routes as broadcast whether
    it was set or not (the top of each prefix shorter than /31)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for label, address in _ipv4_table(sock):
            try:
                netmask = _ifreq_address(sock, SIOCGIFNETMASK, label)
                broadcast = _ifreq_address(sock, SIOCGIFBRDADDR, label)
            except OSError:  # gone since SIOCGIFCONF
                continue
            network = ipaddress.IPv4Network(f"{address}/{netmask}", strict=False)
            if network.prefixlen < 31:
                found.append((label, network.broadcast_address))
            if not broadcast.is_unspecified and broadcast != address:
                found.append((label, broadcast))
    return found


def parse_if_inet6(text: bytes, name: bytes) -> List[wire.IPAddress]:
    """The interface's usable IPv6 addresses from /proc/net/if_inet6 lines
    ("address index prefix scope flags name"), tentative and failed ones left out."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5] == name:
            if not int(fields[4], 16) & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                found.append(ipaddress.IPv6Address(bytes.fromhex(fields[0].decode("ascii"))))
    return found


def table_key(address: ipaddress.IPv6Address) -> bytes:
    """How the table writes ``address``: 32 lowercase hex digits starting a line."""
    return address.packed.hex().encode("ascii")


def listed_usable(text: bytes, name: bytes, key: bytes) -> bool:
    """Whether the address written ``key`` (table_key) is on interface
    ``name`` in the table and usable: what parse_if_inet6 would say, reading
    only its lines. The send tick asks this of every datagram, and parsing
    the whole table into address objects costs more than the send."""
    start = text.find(key)
    while start >= 0:
        end = text.find(b"\n", start)
        if start == 0 or text[start - 1] == 0x0A:  # the address field, not a part of another field
            fields = text[start:end if end >= 0 else len(text)].split()
            if len(fields) == 6 and fields[5] == name:
                return not int(fields[4], 16) & (IFA_F_TENTATIVE | IFA_F_DADFAILED)
        start = text.find(key, start + 1)
    return False


_TABLE_READ = 1 << 12  # bytes to ask for first: some 70 addresses
_TABLE_LINE = 128  # bytes: longer than any line ("address index prefix scope flags name")


def open_address_table() -> Optional[int]:
    """The kernel's IPv6 address table as a descriptor kept for the whole
    run (the sandbox forbids opening it later; re-read with pread); None
    when IPv6 is off."""
    try:
        return os.open(IF_INET6, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def read_table(fd: int) -> bytes:
    """A procfs table (the IPv6 address table, the membership tables) as it
    is now. procfs hands it out a page at most per read,
    each read ending at a line boundary: read on from where the last read
    stopped until one leaves room for another line (the end). One read for a
    host's few addresses; asking for far more each time costs an mmap and an
    mremap per read, on the send tick."""
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, _TABLE_READ, offset)
        chunks.append(chunk)
        offset += len(chunk)
        if _TABLE_READ - len(chunk) >= _TABLE_LINE:
            return b"".join(chunks)


class Ipv6Sources:
    """The kernel's IPv6 address table, kept open for the run (open_address_table):
    whether the source is still usable, and which addresses the interface has."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    key = staticmethod(table_key)  # how usable() wants the address: as the table writes it

    def usable(self, name: bytes, key: bytes) -> bool:
        return listed_usable(read_table(self._fd), name, key)

    def addresses(self, name: bytes) -> List[wire.IPAddress]:
        return parse_if_inet6(read_table(self._fd), name)


class Ipv4Sources:
    """The interface's IPv4 addresses through SIOCGIFCONF on a socket kept
    for the run (the transmit socket, on which the sandbox allows it): the
    same questions as Ipv6Sources."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @staticmethod
    def key(address: wire.IPAddress) -> wire.IPAddress:
        return address

    def usable(self, name: bytes, key: wire.IPAddress) -> bool:
        return key in self.addresses(name)

    def addresses(self, name: bytes) -> List[wire.IPAddress]:
        return [address for label, address in _ipv4_table(self._sock) if _label_matches(label, name)]


MEMBERSHIP_TABLES = {4: "/proc/self/net/igmp", 6: "/proc/self/net/igmp6"}


def open_membership_table(version: int) -> Optional[int]:
    """The kernel's multicast membership table of one family, as a
    descriptor kept for the whole run (re-read with pread); None when the
    family is off."""
    try:
        return os.open(MEMBERSHIP_TABLES[version], os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def joined(text: bytes, ifindex: int, group: wire.IPAddress) -> bool:
    """Whether the membership table lists the group on the interface with
    this index: what decides whether datagrams to the group are taken in
    there, whichever socket joined.

    igmp6: one line per membership, "index name group users flags timer",
    the group in 32 hex digits. igmp: a line per interface, "index name :
    count querier", then one indented line per group, the group written as
    the kernel's 32-bit integer in host byte order, in 8 hex digits."""
    if group.version == 6:
        key, index = group.packed.hex().encode("ascii"), str(ifindex).encode("ascii")
        return any(fields[:1] == [index] and fields[2:3] == [key] for fields in map(bytes.split, text.splitlines()))
    key = b"%08X" % int.from_bytes(group.packed, sys.byteorder)
    current = None
    for line in text.splitlines():
        fields = line.split()
        if line[:1].isspace():
            if current == ifindex and fields[:1] == [key]:
                return True
        else:
            current = int(fields[0]) if fields and fields[0].isdigit() else None
    return False


def ipv6_addresses(name: bytes) -> List[wire.IPAddress]:
    """The interface's usable IPv6 addresses; none when IPv6 is off."""
    try:
        with open(IF_INET6, "rb") as table:
            return parse_if_inet6(table.read(), name)
    except FileNotFoundError:
        return []


def addresses(name: bytes, version: int) -> List[wire.IPAddress]:
    """Usable addresses of one family on the interface, in the kernel's order.

    No netlink (getifaddrs() needs it, and the unit does without AF_NETLINK):
    an ioctl for IPv4, the kernel's address table for IPv6, which also says
    which addresses are still tentative (duplicate address detection).
    """
    return ipv4_addresses(name) if version == 4 else ipv6_addresses(name)
