"""`make demo` shows decoded datagrams and replies, each line labelled with
the process that printed it and the fields explained, then cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import ROOT
from prereq import require_root, require_tool



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
