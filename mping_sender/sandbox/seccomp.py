"""seccomp through libseccomp (ctypes): one filter for the native
architecture, in two tiers. The deny groups kill the process; the allow-list
lets the loop run, some calls only on the descriptors of given roles or with
given arguments (``syscall_groups.PINNED`` says how to pin one); every other
call fails with EPERM. Calls from another architecture's ABI kill the process.

The library must be loaded (``version()``) before Landlock forbids opening it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from mping_sender.sandbox import syscall_groups
from mping_sender.sandbox.common import Outcome, Unavailable

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Dict, List, Mapping, Optional, Sequence, Tuple

    Roles = Mapping[str, Sequence[int]]  # role name -> its descriptors, as syscall_groups.PINNED names them

SONAME = "libseccomp.so.2"
ACT_KILL_PROCESS = 0x80000000
ACT_ALLOW = 0x7FFF0000
ACT_ERRNO = 0x00050000
FLTATR_ACT_BADARCH = 2
CMP_MASKED_EQ = 7
HEADROOM = 1 << 19  # bytes of memory that must be free before libseccomp builds the filter


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@functools.lru_cache(maxsize=None)
def _library() -> Tuple[Optional[ctypes.CDLL], str]:
    """libseccomp, or None and the reason it cannot be loaded."""
    try:
        lib = ctypes.CDLL(SONAME)
    except OSError as err:
        return None, f"cannot load {SONAME}: {err}"
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib, ""


def version() -> Optional[str]:
    """libseccomp's version (loading it), or None when it cannot be loaded."""
    lib, _ = _library()
    if lib is None:
        return None
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def resolve(name: str) -> int:
    """The native syscall number; negative when unknown on this architecture."""
    lib, reason = _library()
    if lib is None:
        raise Unavailable(reason)
    return int(lib.seccomp_syscall_resolve_name(name.encode()))


def _check(result: int, what: str) -> None:
    if result < 0:
        raise Unavailable(f"{what}: {os.strerror(-result)}")


class _Filter:
    """A libseccomp filter context."""

    def __init__(self, lib: ctypes.CDLL, default_action: int) -> None:
        self._lib = lib
        self._ctx = lib.seccomp_init(default_action)
        if not self._ctx:
            raise Unavailable("seccomp_init failed")

    def __enter__(self) -> "_Filter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._lib.seccomp_release(self._ctx)

    def set_bad_arch_action(self, action: int) -> None:
        _check(self._lib.seccomp_attr_set(self._ctx, FLTATR_ACT_BADARCH, action), "seccomp_attr_set")

    def add(self, action: int, name: str, conditions: Sequence[Tuple[int, int, int]] = ()) -> bool:
        """Add one rule; it matches when every (argument, mask, value)
        condition holds: argument & mask == value. False when the name is
        unknown here."""
        number = resolve(name)
        if number < 0:
            return False
        array = (_ArgCmp * max(1, len(conditions)))(*(_ArgCmp(index, CMP_MASKED_EQ, mask, value)
                                                        for index, mask, value in conditions))
        result = self._lib.seccomp_rule_add_array(self._ctx, action, number, len(conditions), array)
        if result == -errno.EDOM:  # known to libseccomp, absent on this architecture
            return False
        _check(result, f"seccomp rule for {name}")
        return True

    def load(self) -> None:
        _check(self._lib.seccomp_load(self._ctx), "seccomp_load")


def _groups(filt: _Filter) -> Dict[str, List[str]]:
    """Add the deny groups; return the calls each actually blocks here."""
    enforced: Dict[str, List[str]] = {}
    for group, names in syscall_groups.DENY_GROUPS.items():
        enforced[group] = [name for name in names if filt.add(ACT_KILL_PROCESS, name)]
    return enforced


def _allow(filt: _Filter, roles: Roles) -> List[str]:
    """Add the allow-list and the pinned calls; return what is allowed."""
    allowed = [name for name in syscall_groups.ALLOW if filt.add(ACT_ALLOW, name)]
    for rule in syscall_groups.PINNED:
        if rule.roles is syscall_groups.ANY:
            descriptors = [()]
        else:
            descriptors = [(syscall_groups.equals(0, fd),) for role in rule.roles for fd in roles.get(role, ())]
        added = [filt.add(ACT_ALLOW, rule.call, pin + rule.only_if) for pin in descriptors]
        if any(added):
            on = "" if rule.roles is syscall_groups.ANY else f" on {','.join(rule.roles)}"
            allowed.append(f"{rule.call}({rule.reason}{on})")
    return allowed


def install(roles: Roles) -> Outcome:
    """Build and load the filter (needs no_new_privs or CAP_SYS_ADMIN);
    ``roles`` names the descriptors the pinned calls may use."""
    lib, reason = _library()
    if lib is None:
        raise Unavailable(reason)
    try:  # room to build the filter: libseccomp crashes where memory runs out inside it
        bytearray(HEADROOM)
    except MemoryError:
        raise Unavailable("out of memory to build the filter") from None
    with _Filter(lib, ACT_ERRNO | errno.EPERM) as filt:
        filt.set_bad_arch_action(ACT_KILL_PROCESS)
        enforced = _groups(filt)
        allowed = _allow(filt, roles)
        filt.load()
    details = tuple(f"seccomp kill {group}: {' '.join(names)}" for group, names in enforced.items())
    return Outcome("deny+allow", details + (f"seccomp allow (all else EPERM): {' '.join(allowed)}",))
