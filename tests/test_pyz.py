"""The one-file build (`make pyz`): reproducible, the package and nothing
else, and run from the zip it behaves as the installed program, sandbox
included. `make check-pythons` runs this file under every supported Python,
so the .pyz is proven on each of them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from typing import List

import pytest

import pyz as pyz_tool
from mping_sender import __version__
from netns import received
from prereq import require, require_sandbox, require_tool
from test_sandbox import _refused_after_filter, _tracee, _without_libseccomp

ROOT = pyz_tool.ROOT
DEV = ("-X", "dev", "-W", "error")  # any warning, ResourceWarning included, is an error
WITHOUT_TREE = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d ", re.MULTILINE)  # ISO 8601 with the offset


@pytest.fixture(scope="module")
def pyz(tmp_path_factory):
    return pyz_tool.build(ROOT, tmp_path_factory.mktemp("pyz"))


def test_make_pyz_twice_gives_the_same_bytes(tmp_path):
    """`make pyz` (with the PATH's python3), then this Python from a copy of
    the package with fresh timestamps: under make check-pythons that is two
    different Pythons."""
    require_tool("make")
    made = subprocess.run(["make", "-s", "pyz", f"PYZDIR={tmp_path}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    first = tmp_path / f"mping-sender-{__version__}.pyz"
    copy = tmp_path / "tree"
    for path in sorted((ROOT / "mping_sender").rglob("*.py"), reverse=True):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (tmp_path / "second").mkdir()
    second = pyz_tool.build(copy, tmp_path / "second")
    assert second.name == first.name
    assert second.read_bytes() == first.read_bytes()
    assert first.stat().st_mode & 0o777 == second.stat().st_mode & 0o777 == 0o755


def test_the_archive_holds_the_package_and_nothing_else(pyz):
    git = require_tool("git")
    tracked = subprocess.run([git, "ls-files", "mping_sender/*.py"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    require(bool(tracked), "needs a git checkout (the tracked files are the reference)")
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(pyz) as archive:
        infos = archive.infolist()
        main = archive.read("__main__.py")
    assert [info.filename for info in infos] == ["__main__.py"] + sorted(tracked)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert main == (ROOT / "mping_sender" / "__main__.py").read_bytes()


def _run(argv: List[str], **kwargs) -> tuple:
    """(exit code, stdout, stderr without timestamps) of a finished program."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kwargs)
    return done.returncode, done.stdout, TIMESTAMP.sub("", done.stderr)


AS_INSTALLED = {
    "version": (["--version"], 0),
    "help": (["--help"], 0),
    "unknown option": (["--bogus"], 64),
    "bad number": (["--interface-name", "eth0", "--ttl", "256"], 64),
    "no such interface": (["--interface-name", "mpsnone0", "--sandbox", "require"], 69),
}


@pytest.mark.parametrize("case", AS_INSTALLED)
def test_runs_from_the_zip_as_from_the_tree(pyz, tmp_path, case):
    """Same output and exit code, with no tree in sight of the .pyz."""
    args, code = AS_INSTALLED[case]
    tree = _run([sys.executable, "-m", "mping_sender", *args], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    zipped = _run([sys.executable, *DEV, str(pyz), *args], env=WITHOUT_TREE, cwd=tmp_path)
    assert zipped == tree
    assert zipped[0] == code
    assert "Traceback" not in zipped[2]


@pytest.mark.parametrize("start", [[], [sys.executable, "-IS"]], ids=["#!", "python3 -IS"])
def test_the_file_runs_by_itself(pyz, tmp_path, start):
    """The #! line finds python3 on PATH; -IS, as the installed launcher, works too."""
    require_tool("python3")
    done = _run([*start, str(pyz), "--version"], env=WITHOUT_TREE, cwd=tmp_path)
    assert done == (0, f"mping-sender {__version__}\n", "")


LATE_IMPORT = """
import sys
from mping_sender import sandbox
from mping_sender.log import setup
sandbox.apply("require", setup("warning"))
assert "mping_sender.reply_stats" not in sys.modules
try:
    import mping_sender.reply_stats
except Exception as err:
    print(type(err).__name__)
else:
    print("imported")
"""


def test_nothing_can_be_imported_from_the_zip_once_sandboxed(pyz, tmp_path):
    """Why start-up must import everything: zipimport reopens the archive
    for every module, and the sandbox refuses the open."""
    require_sandbox()
    out = subprocess.run([sys.executable, *DEV, "-c", LATE_IMPORT], capture_output=True, text=True, timeout=30,
                         env=dict(WITHOUT_TREE, PYTHONPATH=str(pyz)), cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, "PermissionError\n"), out.stderr


def _read_until(proc: subprocess.Popen, text: str, lines: List[str]) -> None:
    """Read the program's stderr into lines until one contains text."""
    for line in proc.stderr:
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"the program ended before logging {text!r}:\n{''.join(lines)}")


def test_sandboxed_run_from_the_zip_sends_replies_and_signals(netpair, pyz, tmp_path):
    """Under strace, --sandbox require, -X dev -W error: datagrams, replies,
    SIGUSR1 and SIGTERM with their summaries, the JSON statistics; after the
    filter, nothing is refused (no late import), and no file of the tree is read."""
    require_sandbox()
    strace = require_tool("strace")
    receiver = netpair.receiver("ff2e::42", count=20)  # 10 datagrams, 10 replies
    netpair.reflector("ff2e::42")
    trace, stats = tmp_path / "trace", tmp_path / "stats.json"
    sender = netpair.popen(netpair.sender_ns, [
        strace, "-f", "-qq", "-o", str(trace), sys.executable, *DEV, str(pyz),
        "--interface-name", netpair.SENDER_IF, "--interval", "0.05", "--sandbox", "require",
        "--log-level", "trace", "--stats-json", str(stats)], env=WITHOUT_TREE, cwd=tmp_path)
    log: List[str] = []
    _read_until(sender, "sandbox: no_new_privs=on", log)
    sequences = [d["sequence"] for d in received(receiver) if d["type"] == "s"]
    pid = _tracee(trace)
    os.kill(pid, signal.SIGUSR1)
    _read_until(sender, "mping totals", log)
    os.kill(pid, signal.SIGTERM)
    _, rest = sender.communicate(timeout=30)
    err = "".join(log) + rest
    assert sender.returncode == 0, err
    assert sequences == list(range(len(sequences))) and len(sequences) >= 10  # each before its reply
    assert _refused_after_filter(trace) == []
    calls = trace.read_text()
    assert str(pyz) in calls and str(ROOT / "mping_sender") not in calls
    assert "securebits=locked caps=0 landlock=abi" in err and "seccomp=deny+allow" in err
    assert "received SIGTERM, stopping" in err
    assert err.count("summary:") == 2 and err.count(f"--- {netpair.receiver6} mping statistics ---") == 2
    for bad in ("Traceback", "Warning", "Exception ignored", "warning:", "error:", "fatal:"):
        assert bad not in err, err
    receivers = json.loads(stats.read_text())["receivers"]
    assert [r["address"] for r in receivers] == [str(netpair.receiver6)] and receivers[0]["received"] >= 10


def test_the_zip_on_a_host_without_libseccomp_says_which_layer_is_missing(netpair, pyz, tmp_path):
    """best-effort (the default): one warning naming the layer and why, the
    other layers applied, the datagrams sent; no traceback."""
    require_sandbox()
    receiver = netpair.receiver("ff2e::42", count=3)
    argv = [sys.executable, str(pyz), "--interface-name", netpair.SENDER_IF, "--interval", "0.05", "--count", "3"]
    proc = netpair.popen(netpair.sender_ns, _without_libseccomp(argv), env=WITHOUT_TREE, cwd=tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "libseccomp unavailable" in err and "Traceback" not in err
    assert err.count("warning: sandbox: seccomp not applied: cannot load libseccomp.so.2") == 1, err
    assert "seccomp=unavailable" in err and "landlock=abi" in err and "no_new_privs=on" in err, err
    assert len(received(receiver)) == 3
