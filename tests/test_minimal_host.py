"""The .pyz on a minimal host: a fresh Debian 12 root file system
(tools/rootfs.py: Debian's packages, python3 and libseccomp2 among them, no
mping-sender), run as a throwaway overlay: the file started by its #! line,
sending through the namespace veth under --sandbox require."""

from __future__ import annotations

import subprocess

import pyz
import rootfs
from netns import received
from prereq import require_sandbox, require_tool

LANDLOCK_CALLS = "landlock_create_ruleset landlock_add_rule landlock_restrict_self"  # nspawn's filter lacks them


def test_the_pyz_runs_sandboxed_on_a_minimal_debian(netpair, tmp_path):
    require_sandbox()
    nspawn = require_tool("systemd-nspawn")
    require_tool("mmdebstrap")
    root = rootfs.ensure()
    assert not (root / "usr/lib/mping-sender").exists() and not (root / "usr/bin/mping-sender").exists()
    program = pyz.build(pyz.ROOT, tmp_path)
    receiver = netpair.receiver("ff2e::42", count=10)  # 5 datagrams, 5 replies
    netpair.reflector("ff2e::42")
    run = subprocess.run([
        nspawn, "--quiet", "--directory", str(root), "--volatile=overlay", "--register=no", "--keep-unit", "--pipe",
        f"--machine={netpair.tag}", f"--network-namespace-path=/run/netns/{netpair.sender_ns}",
        f"--bind-ro={program}:/opt/{program.name}", f"--system-call-filter={LANDLOCK_CALLS}",
        f"/opt/{program.name}", "--interface-name", netpair.SENDER_IF, "--count", "5",
        "--interval", "0.05", "--sandbox", "require", "--expect-replies"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "securebits=locked caps=0 landlock=abi" in run.stderr and "seccomp=deny+allow" in run.stderr
    assert "summary: 5 sent, 0 failed" in run.stderr and "Traceback" not in run.stderr
    assert [d["sequence"] for d in received(receiver) if d["type"] == "s"] == list(range(5))
