"""The event loop's cost: one wake-up per datagram, counted in system calls
under strace on the real, sandboxed program (replies on, interface check
and reply bookkeeping included)."""

from __future__ import annotations

import re
from collections import Counter

from helpers import program, program_env
from netns import received
from prereq import require_tool

COUNT = 25
INTERVAL = 0.1


def test_one_wake_per_datagram(netpair, tmp_path):
    strace = require_tool("strace")
    receiver = netpair.receiver("ff2e::42", count=COUNT)
    trace = tmp_path / "trace"
    # 2.4 s at 100 ms: the once-a-second interface and source-address look
    # and the per-interval reply bookkeeping must ride on the send ticks, not
    # wake the process, and a wait this long must not end early to be
    # finished by a second one.
    sender = netpair.popen(netpair.sender_ns, [
        strace, "-f", "-qq", "-o", str(trace),
        "-e", "trace=seccomp,pselect6,select,timerfd_settime,sendto,read,ioctl,pread64",
        *program("--interface-name", netpair.SENDER_IF, "--interval", str(INTERVAL), "--count", str(COUNT),
                 "--sandbox", "require")], env=program_env())
    _, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert len(received(receiver)) == COUNT
    lines = trace.read_text().splitlines()
    # What the loop does: everything after the seccomp filter went in (start-up is before it).
    start = max(n for n, line in enumerate(lines) if re.search(r" seccomp\(SECCOMP_SET_MODE_FILTER, .*\) = 0$", line))
    loop = [line for line in lines[start + 1:] if "(" in line and "resumed" not in line]
    calls = Counter(line.split()[1].split("(")[0] for line in loop)
    waits = calls["pselect6"] + calls["select"]
    timer_reads = sum(1 for line in loop if re.search(r" read\(\d+, .*, 8\)\s+= 8$", line))
    assert calls["sendto"] == COUNT, calls
    # Datagram 0 leaves at once (its deadline has passed: a poll); then the
    # timer is armed once, with the interval as its period, and every other
    # datagram is one wait and one read of the timer: no early wait, no second
    # wait, no timer of its own for the jobs, no re-arming.
    assert waits == COUNT and calls["timerfd_settime"] == 1 and timer_reads == COUNT - 1, (calls, timer_reads)
    # The interface (its flags: one ioctl) and the IPv6 source address (one
    # read of the address table) are looked at once a second, not per datagram
    # (a second more if a stall on a busy machine made the run longer).
    seconds = int((COUNT - 1) * INTERVAL)
    assert calls["ioctl"] == calls["pread64"] and seconds <= calls["ioctl"] <= seconds + 1, calls
