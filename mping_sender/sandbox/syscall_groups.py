"""The seccomp policy as data: what kills the process, and what the loop may do.

Deny groups carry systemd's names and members (``systemd-analyze
syscall-filter``, systemd 252) where systemd has the group; additions are
marked. Names this architecture or this libseccomp does not know are
skipped when the filter is built. A call in no list fails with EPERM.
"""

from __future__ import annotations


from mping_sender import netif

TYPE_CHECKING = False  # typing is for the checker: not imported at run time (start-up cost, issue 12)
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
# re-check): they run under this same filter.
ALLOW: Dict[str, str] = {
    # measured
    "pselect6": "the loop's wait (select.select on x86_64 glibc); the log's look whether stderr takes a line now",
    "timerfd_settime": "arming the loop's timer: once on the slots' grid, again for a job that cannot wait for a slot",
    "write": "log lines to stderr; the C signal handler's byte into the wakeup pipe",
    "read": "signal wakeup pipe (SignalPipe.pending); the expiry count of the loop's timer",
    "rt_sigreturn": "returning from a signal handler",
    "rt_sigaction": "Python restoring signal handlers at exit",
    "close": "closing sockets and the wakeup pipe at exit",
    "mmap": "memory (pymalloc arenas, malloc of large blocks)",
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
    "mremap": "memory (realloc of large blocks)",
    "madvise": "memory (malloc trimming)",
    "futex": "locks inside libc and Python",
    "restart_syscall": "the kernel restarting a call interrupted by a signal",
    "exit": "thread exit",
    "sigaltstack": "faulthandler restoring the signal stack at exit (python3 -X dev, PYTHONFAULTHANDLER=1)",
    # features running in the same loop
    "recvfrom": "the UDP reply socket",
    "recvmsg": "the UDP reply socket (with ancillary data: timestamps, hop limit)",
    "recvmmsg": "the UDP reply socket, batched",
    "setsockopt": "re-pointing IP(V6)_MULTICAST_IF, re-joining a group after an interface comes back",
    "getsockopt": "reading socket options: SO_ERROR of the transmit socket; the reply socket's drop counter "
                  "(SO_MEMINFO: at each wake-up for replies, once a period, at each summary)",
    "ftruncate": "--stats-json: cutting the file, rewritten in place at the end, to its new length "
                 "(the descriptor was opened before the sandbox, without truncating it)",
    "ftruncate64": "ftruncate on 32-bit architectures",
    "pread64": "re-reading the IPv6 address table (/proc/self/net/if_inet6, opened before the sandbox) "
               "to notice the bound source address removed or failing duplicate address detection",
}

# Allowed only with these arguments.
#
# sendto(): only with a NULL destination (argument 4), that is on a connected
# socket: each datagram on the transmit socket (connected to the group) and
# systemd notify (connected to NOTIFY_SOCKET). With sendmsg, sendmmsg,
# connect, bind and socket all refused, a subverted process can send to
# nothing but the group: egress is pinned in the process, whatever the unit.
SENDTO_DESTINATION_ARG = 4
# ioctl(): the interface re-check (linkwatch) on the open transmit socket.
# SIOCGIFCONF: the IPv4 source address looked up (linkwatch.SourceWatch, netif.Ipv4Sources).
IOCTL_REQUESTS: Dict[str, int] = {"SIOCGIFINDEX": netif.SIOCGIFINDEX, "SIOCGIFFLAGS": netif.SIOCGIFFLAGS,
                                  "SIOCGIFCONF": netif.SIOCGIFCONF}
