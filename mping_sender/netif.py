"""Network interfaces: index, flags and addresses of a named interface.

Index and flags come from ioctls on an existing socket, so they still work
once the sandbox forbids opening files or new kinds of socket.
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import socket
import struct
from typing import List

from mping_sender import wire
from mping_sender.libc import check, libc

SIOCGIFFLAGS = 0x8913
SIOCGIFINDEX = 0x8933
IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_MULTICAST = 0x1000

_IFREQ = struct.Struct("16sI20x")  # ifr_name, then the first int of the union


def _ifreq(sock: socket.socket, request: int, name: str) -> int:
    raw = fcntl.ioctl(sock.fileno(), request, _IFREQ.pack(name.encode(), 0))
    return _IFREQ.unpack(raw)[1]


def index(sock: socket.socket, name: str) -> int:
    """The interface's current index; OSError(ENODEV) when it does not exist."""
    return _ifreq(sock, SIOCGIFINDEX, name)


def flags(sock: socket.socket, name: str) -> int:
    """The interface's IFF_* flags (only the low 16 bits exist in ifreq)."""
    return _ifreq(sock, SIOCGIFFLAGS, name) & 0xFFFF


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [
    ("next", ctypes.POINTER(_Ifaddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.POINTER(_Sockaddr)),
    ("netmask", ctypes.POINTER(_Sockaddr)),
    ("ifu", ctypes.c_void_p),
    ("data", ctypes.c_void_p),
]


def _decode(addr: _Sockaddr) -> wire.IPAddress:
    raw = bytes(addr.data)
    if addr.family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[2:6])
    return ipaddress.IPv6Address(raw[6:22])


def addresses(name: str, version: int) -> List[wire.IPAddress]:
    """Addresses of one family on the interface, in the kernel's order."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    head = ctypes.POINTER(_Ifaddrs)()
    check(libc.getifaddrs(ctypes.byref(head)), "getifaddrs")
    try:
        found = []
        entry = head
        while entry:
            item = entry.contents
            if item.addr and item.addr.contents.family == family and item.name.decode() == name:
                found.append(_decode(item.addr.contents))
            entry = item.next
        return found
    finally:
        libc.freeifaddrs(head)
