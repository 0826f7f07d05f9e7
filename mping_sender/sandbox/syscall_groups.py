"""The seccomp policy as data: what kills the process, and what the loop may do.
The mechanism that turns it into a filter is ``seccomp.py``.

Deny groups carry systemd's names and members (``systemd-analyze
syscall-filter``, systemd 252) where systemd has the group; additions are
marked. Names this architecture or this libseccomp does not know are
skipped when the filter is built. A call in no list fails with EPERM.
"""

from __future__ import annotations

import socket
from collections import namedtuple

from mping_sender import netif

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Dict, Tuple

# Kill the whole process (SCMP_ACT_KILL_PROCESS): no path of the sender needs
# any of these, so a call means the process was subverted.
DENY_GROUPS: Dict[str, Tuple[str, ...]] = {
    "@clock": ("adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
               "settimeofday"),
    "@cpu-emulation": ("modify_ldt", "subpage_prot", "switch_endian", "vm86", "vm86old"),
    # systemd lists process_vm_readv/writev under @ipc; they read and write
    # another process's memory, so they belong with the debugging calls here.
    "@debug": ("lookup_dcookie", "perf_event_open", "pidfd_getfd", "ptrace", "rtas", "s390_runtime_instr",
               "sys_debug_setcontext", "process_vm_readv", "process_vm_writev"),
    "@module": ("delete_module", "finit_module", "init_module"),
    "@mount": ("chroot", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount",
               "open_tree", "pivot_root", "umount", "umount2"),
    # Not a systemd group (systemd has RestrictNamespaces= for these).
    "@namespace": ("unshare", "setns"),
    "@obsolete": ("_sysctl", "afs_syscall", "bdflush", "break", "create_module", "ftime", "get_kernel_syms",
                  "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil", "putpmsg", "query_module",
                  "security", "sgetmask", "ssetmask", "stime", "stty", "sysfs", "tuxcall", "ulimit", "uselib",
                  "ustat", "vserver"),
    "@raw-io": ("ioperm", "iopl", "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "s390_pci_mmio_read",
                "s390_pci_mmio_write"),
    "@reboot": ("kexec_file_load", "kexec_load", "reboot"),
    "@swap": ("swapoff", "swapon"),
    "@keyring": ("add_key", "keyctl", "request_key"),
    "@setuid": ("setgid", "setgid32", "setgroups", "setgroups32", "setregid", "setregid32", "setresgid",
                "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32"),
    # systemd's @privileged without the groups already listed (its @chown
    # spelled out): bpf, capset, quotas, hostname, fanotify, file handles, ...
    "@privileged": ("chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32", "acct", "bpf",
                    "capset", "fanotify_init", "fanotify_mark", "nfsservctl", "open_by_handle_at", "quotactl",
                    "quotactl_fd", "setdomainname", "setfsuid", "setfsuid32", "sethostname", "vhangup"),
    "@resources": ("ioprio_set", "mbind", "migrate_pages", "move_pages", "nice", "sched_setaffinity",
                   "sched_setattr", "sched_setparam", "sched_setscheduler", "set_mempolicy",
                   "set_mempolicy_home_node", "setpriority", "setrlimit"),
}

# Allowed without conditions, each with the path that needs it.
#
# Measured with ``strace -f`` on the sandboxed program, IPv4 and IPv6, at
# --log-level trace: datagrams, a send error and its recovery, SIGUSR1,
# SIGTERM and SIGINT, the summary and exit. After the filter is loaded the
# program makes only pselect6, timerfd_settime, sendto (NULL destination), write, read, rt_sigreturn,
# rt_sigaction, close, mmap, munmap, getsockname, getpeername and exit_group
# (clock_gettime goes through the vDSO), on CPython 3.9, 3.11 and 3.13. The
# rest is what the same paths need on other systems and what the features
# built beside the loop need (reply socket, systemd notify, interface
# re-check): they run under this same filter. No setsockopt: every socket is
# configured for good before the sandbox (see PINNED for what is left of
# the socket calls).
ALLOW: Dict[str, str] = {
    # measured
    "pselect6": "the loop's wait (select.select on x86_64 glibc); the log's look whether stderr takes a line now",
    "timerfd_settime": "arming the loop's timer: once on the slots' grid, again for a job that cannot wait for a slot",
    "write": "log lines to stderr; the C signal handler's byte into the wakeup pipe; on a socket it is a "
             "send without destination, which the sockets' own connections pin; a metrics response, on its "
             "connection",
    "read": "signal wakeup pipe (SignalPipe.pending); the expiry count of the loop's timer; a request to the "
            "metrics endpoint",
    "rt_sigreturn": "returning from a signal handler",
    "rt_sigaction": "Python restoring signal handlers at exit",
    "close": "closing sockets and the wakeup pipe at exit; the metrics endpoint's connections",
    "munmap": "memory (pymalloc arenas freed)",
    "getsockname": "socket repr at exit (the unclosed-socket ResourceWarning)",
    "getpeername": "socket repr at exit (the unclosed-socket ResourceWarning)",
    "exit_group": "process exit",
    # the same paths elsewhere: other libcs, architectures, larger heaps
    "select": "the loop's wait and the log's look at stderr, where libc uses select",
    "poll": "waiting on one descriptor",
    "ppoll": "waiting on one descriptor (where poll is ppoll)",
    "clock_gettime": "time.monotonic, time.time without a vDSO",
    "timerfd_settime64": "timerfd_settime on 32-bit architectures with a 64-bit time_t",
    "gettimeofday": "time.time without a vDSO",
    "rt_sigprocmask": "libc and Python masking signals",
    "getrandom": "os.urandom, hash randomisation",
    "brk": "memory (malloc)",
    "mremap": "memory (realloc of large blocks; it keeps the protection, never adds PROT_EXEC)",
    "madvise": "memory (malloc trimming)",
    "futex": "locks inside libc and Python",
    "restart_syscall": "the kernel restarting a call interrupted by a signal",
    "exit": "thread exit",
    "sigaltstack": "faulthandler restoring the signal stack at exit (python3 -X dev, PYTHONFAULTHANDLER=1)",
    # features running in the same loop
    "recvfrom": "the UDP reply socket",
    "recvmsg": "the UDP reply socket (with ancillary data: timestamps, hop limit); the transmit socket's "
               "error queue",
    "recvmmsg": "the UDP reply socket, batched",
    "pread64": "re-reading the kernel's tables, opened before the sandbox: the IPv6 addresses "
               "(/proc/self/net/if_inet6: the bound source removed, or failing duplicate address detection), "
               "the multicast memberships (/proc/self/net/igmp, igmp6: the interface moved away and back)",
}


# Allowed only on some descriptors, or only with some arguments.
#
# How to pin a call to a descriptor: give the roles whose descriptors may
# make it. A role is a name for the descriptors that serve one purpose,
# known when the sandbox is applied: the caller of ``sandbox.apply`` passes
# ``{role: (fd, ...)}`` (``cli.run`` does, for every socket it opened), and
# the filter allows the call only when its first argument is one of those
# numbers (compared as the kernel reads an int: the low 32 bits). A role
# nobody passed allows nothing. Descriptors made after the sandbox have no
# number to pin: the only call that can still make one is accept4 (where a
# listening socket's role allows it), and its connections use the calls
# allowed on every descriptor (read, write, close). For example:
#
#     Pinned("accept4", ("metrics",), (), "the metrics endpoint's connections"),
#
# ``only_if`` adds conditions on other arguments, all of which must hold
# (one rule); several entries for one call are alternatives. libseccomp
# allows one condition per argument in a rule. ANY: on every descriptor.
Pinned = namedtuple("Pinned", "call roles only_if reason")
ANY = None
_INT = 0xFFFFFFFF  # an int argument: the kernel reads the low 32 bits of the register
_POINTER = 0xFFFFFFFFFFFFFFFF  # a pointer argument: all of it


def equals(argument: int, value: int) -> Tuple[int, int, int]:
    """(argument, mask, value): the int argument is value."""
    return argument, _INT, value


def null(argument: int) -> Tuple[int, int, int]:
    """The pointer argument is NULL."""
    return argument, _POINTER, 0


def without(argument: int, bits: int) -> Tuple[int, int, int]:
    """None of these bits is set in the argument."""
    return argument, bits, 0


SENDTO_DESTINATION = 4  # sendto(fd, buf, len, flags, dest_addr, addrlen)
PROT_EXEC = 0x4  # the same on every Linux architecture (mmap's constant, without importing mmap)
SO_MEMINFO = 55  # Linux; Python lacks the name
PINNED: Tuple[Pinned, ...] = (
    # With sendmsg, sendmmsg, connect, bind and socket refused, and the
    # transmit socket connected to the group before the sandbox, a NULL
    # destination is the group: egress is pinned in the process, whatever the unit.
    Pinned("sendto", ("transmit",), (null(SENDTO_DESTINATION),),
           "each datagram, on the transmit socket (connected to the group), NULL destination"),
    Pinned("sendto", ("notify",), (null(SENDTO_DESTINATION),),
           "systemd notify, on its socket (connected to NOTIFY_SOCKET), NULL destination"),
    Pinned("ioctl", ("transmit",), (equals(1, netif.SIOCGIFFLAGS),),
           "the interface's flags (down, no carrier, gone), once a second"),
    Pinned("ioctl", ("transmit",), (equals(1, netif.SIOCGIFINDEX),),
           "the index of the interface's name, after a failed send: re-created?"),
    Pinned("ioctl", ("transmit",), (equals(1, netif.SIOCGIFNAME),),
           "the name of the interface's index: renamed, or gone?"),
    Pinned("ioctl", ("transmit",), (equals(1, netif.SIOCGIFCONF),),
           "the host's IPv4 addresses: the IPv4 source looked up (SourceWatch), once a second"),
    Pinned("getsockopt", ("transmit",), (equals(1, socket.SOL_SOCKET), equals(2, socket.SO_ERROR)),
           "the transmit socket's pending error (SO_ERROR), once its error queue is drained"),
    Pinned("getsockopt", ("reply",), (equals(1, socket.SOL_SOCKET), equals(2, SO_MEMINFO)),
           "the reply socket's drop counter (SO_MEMINFO: at each wake-up for replies, once a period, "
           "at each summary): replies the kernel dropped, not lost on the path"),
    Pinned("ftruncate", ("stats",), (), "--stats-json: cutting the file, rewritten in place at the end, to its "
           "new length (the descriptor was opened before the sandbox, without truncating it)"),
    Pinned("ftruncate64", ("stats",), (), "ftruncate on 32-bit architectures"),
    # The metrics endpoint's connections, made by accept4 on its listening
    # socket alone, non-blocking and close-on-exec as they are made (no
    # fcntl or ioctl on them afterwards); read, write and close do the rest.
    Pinned("accept4", ("metrics",), (equals(3, socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC),),
           "--metrics-listen: a connection to the metrics endpoint, non-blocking and close-on-exec"),
    # mprotect and pkey_mprotect are not allowed at all, and mremap keeps a
    # mapping's protection: no memory can be both written and executed
    # (what systemd's MemoryDenyWriteExecute= does, stricter: no new PROT_EXEC at all).
    Pinned("mmap", ANY, (without(2, PROT_EXEC),), "memory (pymalloc arenas, large blocks), never executable"),
)
