"""Landlock: a ruleset that handles every right the running kernel knows and
grants none, so the process can open, create, list, execute nothing, bind
or connect no TCP port, reach no abstract UNIX socket and signal no process
outside itself. Best effort across ABIs like the official libraries: use
what the kernel has and report it.

Files and sockets opened before restricting keep working: Landlock checks
at open/bind/connect time, not on read, write or send.
"""

from __future__ import annotations

import ctypes
import errno
import os

from mping_sender.libc import check, landlock_create_ruleset, landlock_restrict_self
from mping_sender.sandbox.common import Outcome, Unavailable

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import List, Tuple
    Right = Tuple[int, str, int]  # (first ABI, name, bit)

# The same numbers on every architecture (the unified syscall table).
SYS_CREATE_RULESET = 444
SYS_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1 << 0


FS_RIGHTS: Tuple[Right, ...] = (
    (1, "execute", 1 << 0), (1, "write_file", 1 << 1), (1, "read_file", 1 << 2), (1, "read_dir", 1 << 3),
    (1, "remove_dir", 1 << 4), (1, "remove_file", 1 << 5), (1, "make_char", 1 << 6), (1, "make_dir", 1 << 7),
    (1, "make_reg", 1 << 8), (1, "make_sock", 1 << 9), (1, "make_fifo", 1 << 10), (1, "make_block", 1 << 11),
    (1, "make_sym", 1 << 12), (2, "refer", 1 << 13), (3, "truncate", 1 << 14), (5, "ioctl_dev", 1 << 15),
)
NET_RIGHTS: Tuple[Right, ...] = ((4, "bind_tcp", 1 << 0), (4, "connect_tcp", 1 << 1))
SCOPES: Tuple[Right, ...] = ((6, "abstract_unix_socket", 1 << 0), (6, "signal", 1 << 1))


class _RulesetAttr(ctypes.Structure):
    """struct landlock_ruleset_attr; fields a kernel does not know stay zero,
    which every ABI accepts."""

    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    result = landlock_create_ruleset(SYS_CREATE_RULESET, None, 0, CREATE_RULESET_VERSION)
    return max(result, 0)


def _known(rights: Tuple[Right, ...], version: int) -> List[Right]:
    return [right for right in rights if right[0] <= version]


def _mask(rights: List[Right]) -> int:
    return sum(bit for _, _, bit in rights)


def handled(version: int) -> Tuple[List[Right], List[Right], List[Right]]:
    """The filesystem rights, network rights and scopes this ABI knows (pure)."""
    return _known(FS_RIGHTS, version), _known(NET_RIGHTS, version), _known(SCOPES, version)


def describe(version: int) -> Outcome:
    """The summary word, e.g. abi6(fs,net,scope), and one debug line per kind (pure)."""
    kinds = [(kind, rights) for kind, rights in zip(("fs", "net", "scope"), handled(version)) if rights]
    status = f"abi{version}({','.join(kind for kind, _ in kinds)})"
    details = tuple(f"landlock {kind} (nothing granted): {' '.join(name for _, name, _ in rights)}"
                    for kind, rights in kinds)
    return Outcome(status, details)


def restrict() -> Outcome:
    """Handle everything, grant nothing, restrict this process (needs no_new_privs)."""
    version = abi()
    if version == 0:
        err = ctypes.get_errno()
        raise Unavailable(f"Landlock is not supported or not enabled in this kernel "
                          f"({errno.errorcode.get(err, err)})")
    fs, net, scopes = handled(version)
    attr = _RulesetAttr(_mask(fs), _mask(net), _mask(scopes))
    try:
        fd = check(landlock_create_ruleset(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0),
                   "landlock_create_ruleset")
        try:
            check(landlock_restrict_self(SYS_RESTRICT_SELF, fd, 0), "landlock_restrict_self")
        finally:
            os.close(fd)
    except OSError as err:
        raise Unavailable(str(err)) from None
    return describe(version)
