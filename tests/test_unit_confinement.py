"""The unit's system call and address family filters let the real program
work: every system call and socket family it uses (traced with strace, in a
namespace pair, started by the unit's own ExecStart shell, with systemd
notifications on) is one the unit allows. A program change that needs a new
system call fails here rather than on a router."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

from helpers import ROOT, started
from prereq import require_tool

UNIT = ROOT / "mping-sender.service"


def settings(name: str) -> List[str]:
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(name + "=")]


def syscall_groups() -> Dict[str, List[str]]:
    """systemd's own table of @groups (systemd-analyze syscall-filter)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    groups: Dict[str, List[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            groups[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            groups[current].append(line.strip())
    return groups


def expand(names: List[str], groups: Dict[str, List[str]]) -> Set[str]:
    result: Set[str] = set()
    for name in names:
        result |= expand(groups[name], groups) if name.startswith("@") else {name}
    return result


def allowed_syscalls() -> Set[str]:
    """SystemCallFilter= lines in order: the first is the allow-list, '~'
    lines take away, later plain lines add (systemd.exec(5))."""
    groups = syscall_groups()
    allowed: Set[str] = set()
    for value in settings("SystemCallFilter"):
        if value.startswith("~"):
            allowed -= expand(value[1:].split(), groups)
        else:
            allowed |= expand(value.split(), groups)
    return allowed


# What the unit's identity settings leave the process (CapabilityBoundingSet=,
# SecureBits=, NoNewPrivileges=): no capabilities at all, secure bits
# locked, no_new_privs. The uid stays 0 (without capabilities) so that the
# test can read its own tree; the sandbox sees what it sees under systemd.
# The secure bits come from the unit's SecureBits= (setpriv spells them with
# "_"), so a unit that sets only the locks is caught here.
UNIT_IDENTITY = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                 "--securebits=" + ",".join("+" + bit.replace("-", "_") for bit in settings("SecureBits")[0].split())]


def traced_run(netpair, tmp_path: Path, metrics: bool = False) -> str:
    """The program under strace -f, started the way the unit starts it, with
    the privileges the unit leaves it; with ``metrics``, METRICS_LISTEN set
    and the endpoint scraped once while it runs."""
    words = shlex.split(settings("ExecStart")[0].replace("$$", "$"))
    assert words[-1] == "$ARGS"
    launcher = tmp_path / "mping-sender"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -I -c "
                        f"'import sys; sys.path.insert(0, \"{ROOT}\"); from mping_sender.cli import main; "
                        f"sys.exit(main())' \"$@\"\n")
    launcher.chmod(0o755)
    words[2] = words[2].replace("/usr/bin/mping-sender", str(launcher))
    argv = words[:-1] + ["--interval", "0.05", "--count", "40" if metrics else "10"]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    env = {"INTERFACE_NAME": netpair.SENDER_IF, "ADDRESS": "ff2e::42", "BIND_ADDRESS": "",
           "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "100000", "PATH": os.environ["PATH"],
           "METRICS_LISTEN": f"[{netpair.sender6}]:9810" if metrics else ""}
    trace = tmp_path / "trace"
    proc = netpair.popen(netpair.sender_ns, [*UNIT_IDENTITY, "strace", "-f", "-qq", "-o", str(trace), *argv],
                         env=env)
    err = ""
    if metrics:
        err = started(proc)
        scrape = netpair.popen(netpair.receiver_ns, [sys.executable, str(ROOT / "tools" / "scraper.py"), "get",
                                                     str(netpair.sender6), "9810"])
        out, _ = scrape.communicate(timeout=30)
        assert out.startswith("HTTP/1.1 200 OK\n# HELP mping_sender_info "), out
    err += proc.communicate(timeout=60)[1]
    notify.close()
    assert proc.returncode == 0, err
    assert f"summary: {40 if metrics else 10} sent, 0 failed" in err, err
    assert "sandbox: no_new_privs=on securebits=locked caps=0 " in err, err
    return trace.read_text()


@pytest.mark.parametrize("metrics", [False, True], ids=["plain", "metrics-listen"])
def test_every_syscall_and_family_is_allowed_by_the_unit(netpair, tmp_path, metrics):
    require_tool("strace")
    require_tool("setpriv")
    require_tool("systemd-analyze")
    trace = traced_run(netpair, tmp_path, metrics)
    used = set(re.findall(r"^\d+ +([a-z0-9_]+)\(", trace, re.M))
    assert {"execve", "sendto", "pselect6", "connect"} <= used, used  # the trace is real
    if metrics:
        assert {"listen", "accept4"} <= used, used
    assert used - allowed_syscalls() == set()
    families = set(re.findall(r"^\d+ +socket\((AF_[A-Z0-9]+),", trace, re.M))
    assert {"AF_INET6", "AF_UNIX"} <= families
    assert families <= set(settings("RestrictAddressFamilies")[0].split())
