"""no_new_privs and the securebits lock: the process and anything it could
exec can never gain privileges again (setuid binaries, file capabilities,
root's automatic capabilities)."""

from __future__ import annotations

from mping_sender.libc import prctl
from mping_sender.sandbox import capabilities
from mping_sender.sandbox.common import Outcome, Unavailable

PR_SET_NO_NEW_PRIVS = 38
PR_GET_SECUREBITS = 27
PR_SET_SECUREBITS = 28

SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS = 1 << 4
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7

# What systemd's SecureBits= can set (it has no keyword for the ambient
# bits): root is not special, uid changes do not touch capabilities,
# KEEP_CAPS stays off; every bit locked so it cannot be undone.
SYSTEMD_LOCK = (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
                | SECBIT_KEEP_CAPS_LOCKED)
# libcap-ng's capng_lock(): the above, and nothing can raise an ambient capability.
LOCK = SYSTEMD_LOCK | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED


def set_no_new_privs() -> Outcome:
    """prctl(PR_SET_NO_NEW_PRIVS): also what lets an unprivileged process
    load seccomp and Landlock."""
    try:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as err:
        raise Unavailable(str(err)) from None
    return Outcome("on")


def _locked_by_systemd(current: int, caps: capabilities.CapSets) -> bool:
    """Every bit systemd can set is set and locked, and the process can never
    hold a capability (none permitted, none in the bounding set), so an
    ambient capability can never be raised: as good as the full lock."""
    return (current & SYSTEMD_LOCK == SYSTEMD_LOCK and not current & SECBIT_KEEP_CAPS
            and not caps.permitted and not capabilities.bounding_set())


def lock_securebits() -> Outcome:
    """Set and lock LOCK when CAP_SETPCAP allows it; otherwise say why not."""
    try:
        current = prctl(PR_GET_SECUREBITS)
        if current & LOCK == LOCK and not current & SECBIT_KEEP_CAPS:
            return Outcome("already-locked", (f"securebits: 0x{current:x}, locked before we started",))
        caps = capabilities.read()
        if _locked_by_systemd(current, caps):
            return Outcome("locked", (f"securebits: 0x{current:x}, set and locked by systemd's SecureBits=; "
                                      "no_cap_ambient_raise is moot: no capability is left to raise",))
        setpcap = 1 << capabilities.CAP_SETPCAP
        if not caps.permitted & setpcap:
            return Outcome("not-permitted", (f"securebits: 0x{current:x}, no CAP_SETPCAP to lock them",))
        if not caps.effective & setpcap:
            capabilities.write(capabilities.CapSets(caps.effective | setpcap, caps.permitted, caps.inheritable))
        wanted = (current | LOCK) & ~SECBIT_KEEP_CAPS
        prctl(PR_SET_SECUREBITS, wanted)
    except OSError as err:
        raise Unavailable(str(err)) from None
    return Outcome("locked", (f"securebits: 0x{wanted:x} (noroot, no_setuid_fixup, keep_caps off, "
                              "no_cap_ambient_raise; all locked)",))
