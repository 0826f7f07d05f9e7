"""The event loop's cost: one wake-up per datagram, counted in system calls
under strace on the real, sandboxed program (replies on, interface check
and reply bookkeeping included)."""

from __future__ import annotations

from collections import Counter

from helpers import program, program_env
from netns import received
from prereq import require_tool

COUNT = 20


def test_one_wake_per_datagram(netpair, tmp_path):
    strace = require_tool("strace")
    receiver = netpair.receiver("ff2e::42", count=COUNT)
    trace = tmp_path / "trace"
    # 2 s at 100 ms: the once-a-second interface check and the per-interval
    # reply bookkeeping must ride on the send ticks, not wake the process,
    # and a wait this long must not end early to be finished by a second one.
    sender = netpair.popen(netpair.sender_ns, [
        strace, "-f", "-qq", "-o", str(trace), "-e", "trace=pselect6,select,timerfd_settime,sendto",
        *program("--interface-name", netpair.SENDER_IF, "--interval", "0.1", "--count", str(COUNT),
                 "--sandbox", "require")], env=program_env())
    _, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert len(received(receiver)) == COUNT
    calls = Counter(line.split()[1].split("(")[0] for line in trace.read_text().splitlines()
                    if "(" in line and "resumed" not in line)
    waits = calls["pselect6"] + calls["select"]
    assert calls["sendto"] == COUNT, calls
    # Datagram 0 leaves on the first wait (its deadline has passed), and every
    # wait is armed once: no early wait, no second wait, no timer of its own.
    assert waits == COUNT and calls["timerfd_settime"] == COUNT, calls
