"""no_new_privs and the securebits lock: the process and anything it could
exec can never gain privileges again (setuid binaries, file capabilities,
root's automatic capabilities)."""

from __future__ import annotations

from mping_sender.sandbox import capabilities
from mping_sender.sandbox.common import Outcome, Unavailable, prctl

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

# libcap-ng's capng_lock(): root is not special, uid changes do not touch
# capabilities, KEEP_CAPS stays off, nothing can raise an ambient capability;
# every bit locked so it cannot be undone.
LOCK = (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)


def set_no_new_privs() -> Outcome:
    """prctl(PR_SET_NO_NEW_PRIVS): also what lets an unprivileged process
    load seccomp and Landlock."""
    try:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as err:
        raise Unavailable(str(err)) from None
    return Outcome("on")


def lock_securebits() -> Outcome:
    """Set and lock LOCK when CAP_SETPCAP allows it; otherwise say why not."""
    try:
        current = prctl(PR_GET_SECUREBITS)
        if current & LOCK == LOCK and not current & SECBIT_KEEP_CAPS:
            return Outcome("already-locked", (f"securebits: 0x{current:x}, locked before we started",))
        caps = capabilities.read()
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
