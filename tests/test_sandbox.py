"""The real sandbox, applied in a child process that then tries what a
compromised sender would try; the child reports on stdout or dies."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from mping_sender import config
from mping_sender.errors import UsageError
from mping_sender.sandbox import landlock, seccomp, syscall_groups
from helpers import program_env, started
from netns import received
from prereq import require, require_root, require_tool


# The roles of the descriptors the code before it opened (ROLES, when it set it).
FULL = """
from mping_sender import sandbox
from mping_sender.log import setup
sandbox.apply("require", setup("warning"), globals().get("ROLES", {}))
"""
OPEN_UDP = """
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ROLES = {"transmit": (udp.fileno(),)}
"""
LANDLOCK_ONLY = """
from mping_sender.sandbox import landlock, privs
privs.set_no_new_privs()
landlock.restrict()
"""
PRELUDE = """
import ctypes, errno, json, os, signal, socket, sys
from mping_sender.libc import libc
from mping_sender.sandbox import seccomp
def syscall(name, *args):
    number = seccomp.resolve(name)  # resolved before the filter: libseccomp is loaded
    def call():
        result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
        return errno.errorcode[ctypes.get_errno()] if result == -1 else result
    return call
def attempt(action):
    try:
        action()
    except OSError as err:
        return errno.errorcode[err.errno]
    return "ok"
"""


def child(code: str, sandbox: str = FULL, argv=(), **kwargs) -> subprocess.Popen:
    """A Python child that prepares, applies the sandbox, then runs code."""
    parts = [PRELUDE, sandbox, 'print("applied", flush=True)', textwrap.dedent(code)]
    return subprocess.Popen([sys.executable, "-c", "\n".join(parts), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
                            env=program_env(), **kwargs)


def run(code: str, sandbox: str = FULL, argv=()) -> dict:
    """Run a child to its end; return the JSON object it printed last."""
    proc = child(code, sandbox, argv)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "applied", out + err
    return json.loads(lines[-1])


def _emptied(path, argv):
    """argv in a private mount namespace where path is /dev/null."""
    require_tool("unshare")
    return ["unshare", "--mount", "sh", "-c", 'mount --bind /dev/null "$0" && exec "$@"', path, *argv]


@pytest.fixture(autouse=True)
def sandbox_available():
    require(seccomp.version() is not None, "needs libseccomp.so.2 (Debian package libseccomp2)")
    require(landlock.abi() >= 6, "needs Landlock ABI 6 or later (kernel 6.12+ with lsm=landlock)")


def test_status_shows_no_capabilities_no_new_privs_and_a_filter():
    require_root()
    proc = child("sys.stdin.readline()")
    try:
        assert proc.stdout.readline() == "applied\n"
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines())
    finally:
        proc.communicate("\n", timeout=30)
    assert proc.returncode == 0
    for field in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, field
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"


def test_landlock_forbids_files_tcp_and_signals(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        result = run("""
            tcp = lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            print(json.dumps({
                "read": attempt(lambda: open("/etc/passwd").close()),
                "create": attempt(lambda: open(os.path.join(sys.argv[1], "new"), "w").close()),
                "list": attempt(lambda: os.listdir(sys.argv[1])),
                "bind": attempt(lambda: tcp().bind(("127.0.0.1", 0))),
                "connect": attempt(lambda: tcp().connect(("127.0.0.1", int(sys.argv[2])))),
                "signal": attempt(lambda: os.kill(int(sys.argv[3]), signal.SIGTERM)),
                "own signal": attempt(lambda: os.kill(os.getpid(), 0)),
            }))
            """, LANDLOCK_ONLY,
            [str(tmp_path), str(listener.getsockname()[1]), str(sleeper.pid)])
        assert sleeper.poll() is None, "the signal reached a process outside the domain"
    finally:
        sleeper.kill()
        sleeper.wait()
        listener.close()
    assert result == {"read": "EACCES", "create": "EACCES", "list": "EACCES", "bind": "EACCES",
                      "connect": "EACCES", "signal": "EPERM", "own signal": "ok"}
    assert not os.path.exists(tmp_path / "new")


# One or more calls per deny group, with arguments that would be harmless
# (invalid or no-op) if the filter failed to stop them.
PROBES = [
    ("@clock", "settimeofday", (0, 0)),
    ("@cpu-emulation", "modify_ldt", (0, 0, 0)),
    ("@debug", "ptrace", (2, 1, 0, 0)),
    ("@debug", "process_vm_readv", (1, 0, 0, 0, 0, 0)),
    ("@module", "init_module", (0, 0, 0)),
    ("@mount", "mount", (0, 0, 0, 0, 0)),
    ("@mount", "chroot", (0,)),
    ("@namespace", "unshare", (0,)),
    ("@obsolete", "uselib", (0,)),
    ("@raw-io", "ioperm", (0, 0, 0)),
    ("@reboot", "reboot", (0, 0, 0, 0)),
    ("@reboot", "kexec_load", (0, 0, 0, 0)),
    ("@swap", "swapon", (0, 0)),
    ("@keyring", "keyctl", (0, 0, 0, 0, 0)),
    ("@setuid", "setuid", (0,)),
    ("@setuid", "setgroups", (0, 0)),
    ("@privileged", "bpf", (0xFFFF, 0, 0)),
    ("@resources", "setpriority", (0, 0, 0)),
]


def test_every_deny_group_has_a_probe_and_no_call_is_both_denied_and_allowed():
    assert {group for group, _, _ in PROBES} == set(syscall_groups.DENY_GROUPS)
    denied = {name for names in syscall_groups.DENY_GROUPS.values() for name in names}
    assert not denied & (set(syscall_groups.ALLOW) | {rule.call for rule in syscall_groups.PINNED})


@pytest.mark.parametrize("group,name,args", PROBES, ids=[f"{g}:{n}" for g, n, _ in PROBES])
def test_deny_groups_kill_the_process(group, name, args):
    assert name in syscall_groups.DENY_GROUPS[group]
    proc = child(f"call = syscall({name!r}, *{args!r})\nprint(call(), flush=True)")
    out, err = proc.communicate(timeout=30)
    assert out.splitlines() == ["applied"], (out, err)
    assert proc.returncode == -signal.SIGSYS, (proc.returncode, err)


def test_unlisted_calls_fail_with_eperm_and_no_socket_opens():
    result = run("""
        uname, getpid = syscall("uname", 0), syscall("getpid")
        ifreq = lambda: __import__("fcntl").ioctl(udp.fileno(), 0x8921, b"lo".ljust(40, b"\\0"))  # SIOCGIFMTU
        from mping_sender import netif
        print(json.dumps({
            "uname": uname(),
            "getpid": getpid(),  # the standard logging called it for every line; our log.py does not
            "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)),
            "packet": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
            "netlink": attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)),
            "inet6": attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()),
            "udp bind": attempt(lambda: udp.bind(("127.0.0.1", 0))),
            "nonblocking": attempt(lambda: udp.setblocking(False)),
            "tcp bind": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).bind(("127.0.0.1", 0))),
            "connect": attempt(lambda: udp.connect(("127.0.0.1", 9))),
            "ifindex": netif.index(udp, b"lo"),
            "ifflags": bool(netif.flags(udp, b"lo") & netif.IFF_UP),
            "other ioctl": attempt(ifreq),
            "open": attempt(lambda: open("/etc/passwd").close()),
            "fork": attempt(os.fork),
            "exec": attempt(lambda: os.execv("/bin/true", ["true"])),
        }))
        """, sandbox=OPEN_UDP + FULL)
    assert result == {"uname": "EPERM", "getpid": "EPERM", "unix": "EPERM", "packet": "EPERM",
                      "netlink": "EPERM", "inet6": "EPERM", "udp bind": "EPERM", "nonblocking": "EPERM", "tcp bind": "EPERM",
                      "connect": "EPERM", "ifindex": 1, "ifflags": True,
                      "other ioctl": "EPERM", "open": "EPERM", "fork": "EPERM", "exec": "EPERM"}


TWO_CONNECTED = """
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for sock in (udp, other):
    sock.connect(("127.0.0.1", 9))
"""


def test_socket_calls_are_pinned_to_their_descriptors_and_arguments():
    """sendto, ioctl and getsockopt only on the descriptors of their roles,
    with their arguments; setsockopt on none."""
    result = run("""
        import fcntl, struct
        ifreq = struct.pack("16sI20x", b"lo", 0)
        high = (1 << 32) | udp.fileno()  # the kernel reads the low 32 bits: the same descriptor
        print(json.dumps({
            "send": attempt(lambda: udp.send(b"x")),
            "send, high bits": syscall("sendto", high, 0, 0, 0, 0, 0)(),
            "send, other socket": attempt(lambda: other.send(b"x")),
            "ioctl, other socket": attempt(lambda: fcntl.ioctl(other.fileno(), 0x8913, ifreq)),
            "getsockopt SO_ERROR": attempt(lambda: udp.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)),
            "getsockopt SO_ERROR, other socket": attempt(lambda: other.getsockopt(socket.SOL_SOCKET,
                                                                                  socket.SO_ERROR)),
            "getsockopt SO_TYPE": attempt(lambda: udp.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)),
            "getsockopt IP_TTL": attempt(lambda: udp.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)),
            "setsockopt": attempt(lambda: udp.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 9)),
            "setsockopt, other socket": attempt(lambda: other.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, 1)),
        }))
        """, sandbox=OPEN_UDP + TWO_CONNECTED + FULL)
    # reaches the kernel: sent, or refused for the port unreachable the first send drew
    assert result.pop("send, high bits") in (0, "ECONNREFUSED")
    assert result == {"send": "ok", "send, other socket": "EPERM",
                      "ioctl, other socket": "EPERM", "getsockopt SO_ERROR": "ok",
                      "getsockopt SO_ERROR, other socket": "EPERM", "getsockopt SO_TYPE": "EPERM",
                      "getsockopt IP_TTL": "EPERM", "setsockopt": "EPERM", "setsockopt, other socket": "EPERM"}


# The pattern syscall_groups.PINNED describes for a listening socket: accept4
# on it alone; its connections answer with the calls allowed everywhere.
LISTENING = """
from mping_sender.sandbox import syscall_groups
from mping_sender.sandbox.syscall_groups import Pinned
listener = socket.create_server(("127.0.0.1", 0))
other = socket.create_server(("127.0.0.1", 0))
syscall_groups.PINNED += (Pinned("accept4", ("listen",), (), "connections"),)
ROLES = {"listen": (listener.fileno(),)}
print(listener.getsockname()[1], other.getsockname()[1], flush=True)
"""


def test_a_listening_role_accepts_and_its_connections_answer():
    proc = child("""
        accepted = [listener.accept()[0] for _ in range(2)]
        for connection in accepted:
            os.write(connection.fileno(), os.read(connection.fileno(), 10).upper())
        print(json.dumps({
            "send on a connection": attempt(lambda: accepted[0].send(b"x")),
            "other listener": attempt(lambda: other.accept()),
        }), flush=True)
        """, sandbox=LISTENING + FULL)
    clients = []
    try:
        ports = [int(word) for word in proc.stdout.readline().split()]
        assert proc.stdout.readline() == "applied\n"
        clients += [socket.create_connection(("127.0.0.1", port), timeout=10) for port in (ports[1], *ports[:1] * 2)]
        for client in clients[1:]:
            client.sendall(b"ping")
        answers = [client.recv(10) for client in clients[1:]]
        out, err = proc.communicate(timeout=30)
    finally:
        for client in clients:
            client.close()
        if proc.poll() is None:  # a failure above: no child left waiting for connections
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert answers == [b"PING", b"PING"]
    assert json.loads(out.splitlines()[-1]) == {"send on a connection": "EPERM", "other listener": "EPERM"}


W_X = """
import mmap
def anonymous(prot):
    return lambda: mmap.mmap(-1, 4096, prot=prot).close()
exec_gain = syscall("mprotect", 0, 4096, mmap.PROT_READ | mmap.PROT_EXEC)
print(json.dumps({
    "rw": attempt(anonymous(mmap.PROT_READ | mmap.PROT_WRITE)),
    "rwx": attempt(anonymous(mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),
    "rx": attempt(anonymous(mmap.PROT_READ | mmap.PROT_EXEC)),
    "mprotect exec": exec_gain(),
}))
"""

# What an older kernel (before 6.3) answers to PR_SET_MDWE: EINVAL, from a
# filter inherited across exec.
_NO_MDWE = """
import errno, os, sys
from mping_sender.sandbox import seccomp
from mping_sender.sandbox.mdwe import PR_SET_MDWE
lib, _ = seccomp._library()
with seccomp._Filter(lib, seccomp.ACT_ALLOW) as filt:
    assert filt.add(seccomp.ACT_ERRNO | errno.EINVAL, "prctl", [(0, 0xFFFFFFFF, PR_SET_MDWE)])
    filt.load()
os.execv(sys.argv[1], sys.argv[1:])
"""


# The switch set before, with other bits than ours (systemd may set it):
# setting ours again would be refused (EPERM).
MDWE_SET = """
from mping_sender.libc import prctl
from mping_sender.sandbox.mdwe import PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN | 2)  # | PR_MDWE_NO_INHERIT
"""
KERNELS = {"PR_SET_MDWE": ("", None), "PR_SET_MDWE set before": (MDWE_SET, None),
           "without PR_SET_MDWE": ("", _NO_MDWE)}


@pytest.mark.parametrize("kernel", KERNELS)
def test_no_memory_is_both_writable_and_executable(kernel):
    before, wrapper = KERNELS[kernel]
    code = "\n".join([PRELUDE, 'import mmap\nPAGE = mmap.mmap(-1, 4096)', before, FULL.replace("warning", "info"),
                      W_X])
    argv = [sys.executable, "-c", code]
    if wrapper is not None:
        argv = [sys.executable, "-c", wrapper, *argv]
    done = subprocess.run(argv, capture_output=True, text=True, env=program_env(), timeout=30)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"rw": "ok", "rwx": "EPERM", "rx": "EPERM", "mprotect exec": "EPERM"}, result
    expected = "mdwe=seccomp" if wrapper is not None else "mdwe=prctl"
    assert f"seccomp=deny+allow {expected}" in done.stderr, done.stderr


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 ABI exists on x86_64 only")
def test_another_abi_kills_the_process():
    x32_getpid = 0x40000000 | 39  # __X32_SYSCALL_BIT | __NR_getpid: the same arch token, another ABI
    proc = child(f"print(libc.syscall(ctypes.c_long({x32_getpid})), flush=True)")
    out, err = proc.communicate(timeout=30)
    assert out.splitlines() == ["applied"] and proc.returncode == -signal.SIGSYS, (out, err, proc.returncode)


def test_unprivileged_user_is_sandboxed_without_failing():
    require_root()
    setpriv = require_tool("setpriv")
    code = PRELUDE + FULL.replace("warning", "info")
    python = os.path.realpath(sys.executable)
    result = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", code],
                            capture_output=True, text=True, env=program_env(), timeout=30)
    assert result.returncode == 0, result.stderr
    assert "securebits=not-permitted caps=0,bounding-kept landlock=abi" in result.stderr
    assert "seccomp=deny+allow" in result.stderr


def test_last_capability_is_probed_when_proc_sys_is_hidden():
    """systemd's ProcSubset=pid hides /proc/sys; here the file reads empty."""
    require_root()
    require_tool("unshare")
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
        expected = int(f.read())
    code = ("print(repr(open('/proc/sys/kernel/cap_last_cap').read()))\n"
            "from mping_sender.sandbox import capabilities; print(capabilities.last_cap())")
    result = subprocess.run(_emptied("/proc/sys/kernel/cap_last_cap", [sys.executable, "-c", code]),
                            capture_output=True, text=True, env=program_env(), timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["''", str(expected)]


def test_securebits_already_locked_is_reported_not_fatal():
    require_root()
    result = run("print(json.dumps([privs.lock_securebits().status, privs.lock_securebits().status]))",
                 "from mping_sender.sandbox import privs")
    assert result == ["locked", "already-locked"]


def test_sandbox_option():
    base = ["--interface-name", "x"]
    assert config.parse(base).sandbox == "best-effort"
    assert config.parse(base + ["--sandbox", "REQUIRE"]).sandbox == "require"
    assert config.parse(base + ["--sandbox=off"]).sandbox == "off"
    with pytest.raises(UsageError, match="--sandbox: 'on' is not one of require, best-effort, off"):
        config.parse(base + ["--sandbox", "on"])


# The real program: everything it needs on every path is allowed.

BREAK = {"ipv4": (["addr", "del", "{source}/24", "dev", "snd0"], ["addr", "add", "{source}/24", "dev", "snd0"]),
         "ipv6": (["route", "del", "ff00::/8", "dev", "snd0", "table", "local"],
                  ["route", "add", "ff00::/8", "dev", "snd0", "table", "local"])}
GROUPS = {"ipv4": ("239.255.42.1", "sender4"), "ipv6": ("ff2e::42", "sender6")}


def _tracee(trace, timeout: float = 10.0) -> int:
    """The pid strace -f writes first: the traced program's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trace.exists() and trace.read_text().strip():
            return int(trace.read_text().split()[0])
        time.sleep(0.05)
    raise TimeoutError("strace wrote nothing")


def _refused_after_filter(trace) -> list:
    """System calls that failed with EPERM or EACCES once the filter was loaded."""
    lines = trace.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "seccomp(SECCOMP_SET_MODE_FILTER, 0," in line)
    return [line for line in lines[start + 1:] if "= -1 EPERM" in line or "= -1 EACCES" in line]


@pytest.mark.parametrize("family", GROUPS)
def test_program_runs_every_path_under_require(netpair, family, tmp_path):
    """Under strace: nothing the program does after the filter is refused."""
    strace = require_tool("strace")
    group, source = GROUPS[family][0], str(getattr(netpair, GROUPS[family][1]))
    receiver = netpair.receiver(group, timeout=3)
    trace = tmp_path / "trace"
    sender = netpair.popen(netpair.sender_ns, [
        strace, "-f", "-qq", "-o", str(trace), sys.executable, "-m", "mping_sender",
        "--interface-name", netpair.SENDER_IF, "--address", group, "--interval", "0.05",
        "--sandbox", "require", "--log-level", "trace"], env=program_env())
    pid = _tracee(trace)
    log = started(sender, "trace: sent seq=2 ")
    os.kill(pid, signal.SIGUSR1)
    log += started(sender, "summary:")
    breaking, repairing = ([word.format(source=source) for word in command] for command in BREAK[family])
    netpair.ip(netpair.sender_ns, *breaking)
    log += started(sender, "send failed")
    netpair.ip(netpair.sender_ns, *repairing)
    log += started(sender, "sending resumed after")
    assert sender.poll() is None, sender.communicate()[1]
    os.kill(pid, signal.SIGTERM)
    _, err = sender.communicate(timeout=30)
    err = log + err
    assert sender.returncode == 0, err
    assert _refused_after_filter(trace) == []
    assert "Traceback" not in err and "critical" not in err
    assert "sandbox: no_new_privs=on securebits=locked caps=0 landlock=abi" in err
    assert "(fs,net,scope) seccomp=deny+allow" in err
    assert "debug: sandbox: seccomp kill @mount: chroot" in err and "debug: sandbox: landlock fs" in err
    assert "libseccomp 2." in err and "Landlock ABI" in err
    assert "send failed" in err and "sending resumed after" in err
    assert err.count("summary:") == 2 and "received SIGTERM, stopping" in err
    assert "trace: sent seq=0 " in err
    sequences = [d["sequence"] for d in received(receiver, sender_done=True)]
    sent = int(re.findall(r"summary: (\d+) sent", err)[-1])
    assert sequences == list(range(sent)) and sent >= 6


def _without_libseccomp(argv):
    """The dynamic loader finds libseccomp.so.2 but cannot load it."""
    with open("/proc/self/maps", encoding="ascii") as maps:  # this process has loaded it (fixture)
        return _emptied(next(line.split()[-1] for line in maps if "libseccomp.so" in line), argv)


# What a container runtime does to a kernel feature it does not want used:
# a seccomp filter answering ENOSYS, inherited across exec.
_NO_LANDLOCK = """
import errno, os, sys
from mping_sender.sandbox import seccomp
lib, _ = seccomp._library()
with seccomp._Filter(lib, seccomp.ACT_ALLOW) as filt:
    assert filt.add(seccomp.ACT_ERRNO | errno.ENOSYS, "landlock_create_ruleset")
    filt.load()
os.execv(sys.argv[1], sys.argv[1:])
"""


def _without_landlock(argv):
    return [sys.executable, "-c", _NO_LANDLOCK, *argv]


MISSING = {
    "libseccomp": (_without_libseccomp, "libseccomp unavailable", "seccomp", "cannot load libseccomp.so.2"),
    "landlock": (_without_landlock, "Landlock unavailable", "landlock",
                 "Landlock is not supported or not enabled in this kernel (ENOSYS)"),
}


@pytest.mark.parametrize("missing", MISSING)
def test_missing_layer_warns_under_best_effort_and_fails_under_require(netpair, missing):
    wrap, version_text, layer, reason = MISSING[missing]
    receiver = netpair.receiver("ff2e::42", count=3)
    argv = [sys.executable, "-m", "mping_sender", "--interface-name", netpair.SENDER_IF, "--interval", "0.05"]
    env = program_env()
    best = netpair.popen(netpair.sender_ns, wrap(argv + ["--count", "3"]), env=env)
    _, err = best.communicate(timeout=30)
    assert best.returncode == 0, err
    assert version_text in err
    assert err.count(f"warning: sandbox: {layer} not applied: {reason}") == 1, err
    assert f"{layer}=unavailable" in err and "no_new_privs=on" in err and "Traceback" not in err
    assert len(received(receiver)) == 3

    required = netpair.popen(netpair.sender_ns, wrap(argv + ["--sandbox", "require"]), env=env)
    _, err = required.communicate(timeout=30)
    assert required.returncode == 70, err
    fatal = [line for line in err.splitlines() if "fatal:" in line]
    assert len(fatal) == 1 and f"sandbox: {layer} cannot be applied: {reason}" in fatal[0], err
    assert "Traceback" not in err


def test_sandbox_off_warns_and_runs(netpair):
    receiver = netpair.receiver("ff2e::42", count=2)
    sender = netpair.sender("--interval", "0.05", "--count", "2", "--sandbox", "off")
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert "warning: sandbox: off (--sandbox off)" in err and "no_new_privs=" not in err
    assert len(received(receiver)) == 2


# The transmit socket as the program opens it, connected to the group; then
# the sandbox; then every way a subverted process could aim elsewhere.
EGRESS = """
import ipaddress, select
from mping_sender import netif, transmit
group_text, target_text, interface, source_text = sys.argv[1:5]
group = ipaddress.ip_address(group_text)
sock = transmit.open_socket(group, 0, 64)
ifindex = netif.index(sock, os.fsencode(interface))
transmit.attach(sock, group, 4321, ifindex, [ipaddress.ip_address(source_text)], 0)
ROLES = {"transmit": (sock.fileno(),)}
"""


@pytest.mark.parametrize("family", GROUPS)
def test_sandboxed_process_can_send_only_to_the_group(netpair, family):
    """Egress is pinned in the process: after the sandbox, the connected
    transmit socket's send() is the only way out, whatever else is tried."""
    group, source = GROUPS[family][0], str(getattr(netpair, GROUPS[family][1]))
    target = str(netpair.receiver4 if family == "ipv4" else netpair.receiver6)
    # The receiver's socket is bound to the wildcard address on port 4321: a
    # datagram that escaped to the target's unicast address would arrive too.
    receiver = netpair.receiver(group, timeout=1.5)
    # Datagrams to the group go before and after the attempts, so the path was
    # open while they were made: a first datagram can be lost to a link that is
    # still settling, so each is sent a few times.
    code = textwrap.dedent("""
        other = (target_text, 4321)
        escape, allowed = b"escape", b"group"
        def to_group():
            for _ in range(5):
                sock.send(allowed)
                select.select([], [], [], 0.05)  # as the program waits (no nanosleep)
        before = attempt(to_group)
        print(json.dumps({
            "before": before,
            "sendto other": attempt(lambda: sock.sendto(escape, other)),
            "sendto group": attempt(lambda: sock.sendto(escape, (group_text, 4321))),
            "sendmsg": attempt(lambda: sock.sendmsg([escape], [], 0, other)),
            "sendmsg connected": attempt(lambda: sock.sendmsg([escape])),
            "sendmmsg": syscall("sendmmsg", sock.fileno(), 0, 0, 0)(),
            "connect": attempt(lambda: sock.connect(other)),
            "bind": syscall("bind", sock.fileno(), 0, 0)(),
            "new socket": attempt(lambda: socket.socket(sock.family, socket.SOCK_DGRAM)),
            "after": attempt(to_group),
        }))
        """)
    proc = netpair.popen(netpair.sender_ns, [sys.executable, "-c", "\n".join([PRELUDE, EGRESS, FULL, code]),
                                             group, target, netpair.SENDER_IF, source],
                         env=program_env())
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {
        "sendto other": "EPERM", "sendto group": "EPERM", "sendmsg": "EPERM", "sendmsg connected": "EPERM",
        "sendmmsg": "EPERM", "connect": "EPERM", "bind": "EPERM", "new socket": "EPERM", "before": "ok", "after": "ok"}
    lengths = [entry["length"] for entry in received(receiver)]
    assert lengths and set(lengths) == {len(b"group")}, lengths
