"""`make demo` shows decoded datagrams and replies, each line labelled with
the process that printed it and the fields explained, then cleans up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from helpers import ROOT
from prereq import require_root, require_tool

DEMO = os.path.join(ROOT, "tools", "demo.py")


def left_behind(pid: int):
    """The namespaces of the demo run as process ``pid`` still listed."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    return [name for name in listed if name.startswith(f"mps{pid}x")]


def run_demo(*wrapper: str, env=None, count: str = "1") -> subprocess.CompletedProcess:
    """tools/demo.py (without make), through ``wrapper``; its pid in ``.pid``."""
    proc = subprocess.Popen([*wrapper, sys.executable, DEMO], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/", env=dict(env or os.environ, COUNT=count))
    out, err = proc.communicate(timeout=120)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    result.pid = proc.pid  # unshare and setpriv exec the demo: the same process
    return result


def test_make_demo_prints_labelled_datagrams_and_replies_and_leaves_nothing_behind():
    require_root()
    require_tool("ip")
    result = subprocess.run(["make", "-s", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, COUNT="2"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    legend, _, run = out.partition("\n--- ")
    for explained in ("sender ", "receiver ", "reflector ", "type=s", "type=r", "time= is the round-trip time",
                      "stamp the sender's monotonic"):
        assert explained in legend, legend
    for family_source in (r"fd00:[0-9a-f]+::1", r"10\.\d+\.0\.1"):
        sent = re.findall(rf"^receiver  \| 288 bytes from {family_source}: mping 2\.0 type=s seq=(\d) "
                          r".* stamp=\d+\.\d{6}$", run, re.M)
        assert sent == ["0", "1"], run
    assert len(re.findall(r"^receiver  \| .* type=r seq=\d", run, re.M)) == 4, run  # the reflector's replies
    assert len(re.findall(r"^sender    \| \S+ info: new receiver .* time=[\d.]+ ms$", run, re.M)) == 2, run
    assert len(re.findall(r"^sender    \| \S+ info: summary: 2 sent, 0 failed", run, re.M)) == 2, run
    unlabelled = [line for line in run.splitlines()[1:] if not re.match(r"(sender|receiver|reflector) +\| |--- ", line)]
    assert not unlabelled, unlabelled
    assert "--- done: namespaces deleted" in out
    names = set(re.findall(r"(mps\d+x\d+-[sr])/", out))
    assert names and not names & set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                    text=True).stdout.split())


def test_demo_says_how_to_run_it_as_root():
    """On a minimal host root may have no sudo: the message says how else."""
    require_root()
    setpriv = require_tool("setpriv")
    result = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                             os.path.join(ROOT, "tools", "demo.py")], capture_output=True, text=True, timeout=30,
                            cwd="/")
    assert result.returncode == 77
    assert "run it as root (su -c 'make demo', or sudo make demo)" in result.stderr


def test_the_demo_completes_where_proc_sys_is_read_only():
    """As in a container: the sysctl that turns duplicate address detection
    off cannot be written, so the demo waits for it instead."""
    require_root()
    require_tool("ip")
    unshare = require_tool("unshare")
    result = run_demo(unshare, "-m", "sh", "-c", "mount --bind /proc/sys /proc/sys && "
                      'mount -o remount,bind,ro /proc/sys && exec "$@"', "sh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.count("info: summary: 1 sent, 0 failed") == 2, result.stdout
    assert "--- done: namespaces deleted" in result.stdout
    assert left_behind(result.pid) == []


def test_without_the_right_to_make_namespaces_one_line_and_exit_77():
    """Root in a user namespace (as in an unprivileged container) may not
    make network namespaces: one line naming what failed and where the demo
    can run, exit 77, nothing left behind."""
    require_root()
    require_tool("ip")
    unshare = require_tool("unshare")
    for flags in (["-r"], ["-r", "-m"]):
        result = run_demo(unshare, *flags)
        assert result.returncode == 77, result.stdout + result.stderr
        assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("make demo: cannot make a network namespace (ip netns add: ")
        assert "run the demo as root on a Linux host or VM, or in a privileged container" in result.stderr
        assert left_behind(result.pid) == []


def test_without_the_ip_command_one_line_and_exit_69():
    require_root()
    result = run_demo(env=dict(os.environ, PATH="/nonexistent"))
    assert (result.returncode, result.stdout) == (69, ""), result.stderr
    assert result.stderr == "make demo: the ip command is missing (Debian: apt-get install iproute2); " \
                            "install it and run the demo again\n"


def test_a_stopped_demo_deletes_its_namespaces_without_a_traceback():
    require_root()
    require_tool("ip")
    proc = subprocess.Popen([sys.executable, DEMO], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd="/", env=dict(os.environ, COUNT="30"))
    for line in proc.stdout:
        if line.startswith("receiver  | "):  # under way: a datagram arrived
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err and "--- interrupted" in out
    assert left_behind(proc.pid) == []
