"""No memory both writable and executable (W^X), as systemd's
MemoryDenyWriteExecute= gives a unit, for a sender started by hand too.

The kernel's own switch, ``prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)``
(Linux 6.3+), refuses a mapping that is writable and executable and any
mapping gaining PROT_EXEC, for good (it cannot be unset) and for children
too. An older kernel refuses the option (EINVAL): the seccomp layer's filter
then carries it alone. It does so on every kernel anyway: mmap never with
PROT_EXEC, mprotect and pkey_mprotect not at all (``syscall_groups``).
"""

from __future__ import annotations

import errno

from mping_sender.libc import prctl
from mping_sender.sandbox.common import Outcome, Unavailable

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1


def refuse_exec_gain() -> Outcome:
    """Set the kernel's switch; "seccomp" when the kernel has none (the
    sandbox reports "unavailable" then if the seccomp layer failed too).
    Already set (systemd's MemoryDenyWriteExecute= does, where it can) is
    as good: it cannot be unset, and setting other bits is refused."""
    try:
        if not prctl(PR_GET_MDWE) & PR_MDWE_REFUSE_EXEC_GAIN:
            prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)
    except OSError as err:
        if err.errno == errno.EINVAL:
            return Outcome("seccomp", ("mdwe: the kernel has no PR_SET_MDWE (Linux 6.3+): the seccomp filter "
                                       "refuses mmap with PROT_EXEC, mprotect and pkey_mprotect",))
        raise Unavailable(str(err)) from None
    return Outcome("prctl", ("mdwe: PR_SET_MDWE with PR_MDWE_REFUSE_EXEC_GAIN, and the seccomp filter "
                             "refuses mmap with PROT_EXEC, mprotect and pkey_mprotect",))
