"""`sudo make demo` shows decoded datagrams and replies, then cleans up."""

from __future__ import annotations

import os
import re
import subprocess

from prereq import require_root, require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_make_demo_prints_datagrams_and_replies_and_leaves_nothing_behind():
    require_root()
    require_tool("ip")
    result = subprocess.run(["make", "-s", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, COUNT="2"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for family_source in (r"fd00:[0-9a-f]+::1", r"10\.\d+\.0\.1"):
        sent = re.findall(rf"288 bytes from {family_source}: mping 2\.0 type=s seq=(\d)", out)
        assert sent == ["0", "1"], out
    assert len(re.findall(r"type=r seq=\d", out)) == 4, out  # the reflector's replies
    assert "--- done: namespaces deleted" in out
    names = set(re.findall(r"(mps\d+x\d+-[sr])/", out))
    assert names and not names & set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                    text=True).stdout.split())
