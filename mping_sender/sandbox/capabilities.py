"""Capabilities: read them, and drop every one from all five sets.

The order matters: the bounding set can only shrink while CAP_SETPCAP is
still effective, so it goes first and ``capset`` (which removes SETPCAP
itself) goes last.
"""

from __future__ import annotations

import ctypes
import errno
from collections import namedtuple

from mping_sender.libc import capget, capset, check, prctl
from mping_sender.sandbox.common import Outcome, Unavailable

CAP_SETPCAP = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_VERSION_3 = 0x20080522
_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class CapSets(namedtuple("CapSets", "effective permitted inheritable")):
    """The effective, permitted and inheritable sets as 64-bit masks (int)."""

    __slots__ = ()


def read() -> CapSets:
    """This process's capability sets (capget, v3: two 32-bit halves)."""
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    check(capget(ctypes.byref(header), data), "capget")
    low, high = data
    return CapSets(low.effective | high.effective << 32, low.permitted | high.permitted << 32,
                   low.inheritable | high.inheritable << 32)


def write(caps: CapSets) -> None:
    """Set the three sets (capset, v3)."""
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    for half in (0, 1):
        for name in ("effective", "permitted", "inheritable"):
            setattr(data[half], name, getattr(caps, name) >> (32 * half) & 0xFFFFFFFF)
    check(capset(ctypes.byref(header), data), "capset")


def last_cap() -> int:
    """The highest capability the kernel knows. The file may be hidden
    (systemd's ProcSubset=pid), so fall back to probing the bounding set:
    PR_CAPBSET_READ fails with EINVAL past the last one."""
    try:
        with open(_LAST_CAP_FILE, "rb") as f:  # bytes: no text codec to import at start-up
            return int(f.read())
    except (OSError, ValueError):
        pass
    cap = 0
    while True:
        try:
            prctl(PR_CAPBSET_READ, cap + 1)
        except OSError as err:
            if err.errno == errno.EINVAL:
                return cap
            raise
        cap += 1


def bounding_set() -> int:
    """The bounding set as a mask."""
    return sum(1 << cap for cap in range(last_cap() + 1) if prctl(PR_CAPBSET_READ, cap))


def drop_all() -> Outcome:
    """Empty the bounding, ambient, inheritable, permitted and effective sets.

    Without CAP_SETPCAP (an ordinary user) the bounding set cannot shrink; with
    no_new_privs set and the other sets empty nothing can use it, so that is
    reported, not fatal."""
    try:
        bounding_kept = not read().effective & (1 << CAP_SETPCAP)
        if not bounding_kept:
            for cap in range(last_cap() + 1):
                if prctl(PR_CAPBSET_READ, cap):
                    prctl(PR_CAPBSET_DROP, cap)
        try:
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        except OSError as err:
            if err.errno != errno.EINVAL:  # a kernel without ambient capabilities
                raise
        if read() != CapSets(0, 0, 0):  # under systemd's unit they are empty and capset is filtered
            write(CapSets(0, 0, 0))
        remaining = bounding_set()
    except OSError as err:
        raise Unavailable(str(err)) from None
    if remaining:
        return Outcome("0,bounding-kept", (f"capabilities: bounding set kept (0x{remaining:x}): "
                                           "no CAP_SETPCAP to drop it; no_new_privs makes it unusable",))
    return Outcome("0", ("capabilities: effective, permitted, inheritable, ambient and bounding sets empty",))
