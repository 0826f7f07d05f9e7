"""Start-up on a host that is still coming up: an interface that is not up
yet and an IPv6 address still in duplicate address detection are waited
for (bounded, logged once); what never comes is exit 69, which the unit
restarts. And a bad command line under systemd reaches the journal as err."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mping_sender import source
from helpers import ROOT, program_env, run_program
from netns import received, stop
from prereq import require_sandbox, require_tool



def wait_for_line(proc: subprocess.Popen, text: str) -> str:
    """Read the sender's stderr until a line containing text."""
    for line in proc.stderr:
        if text in line:
            return line
    raise AssertionError(f"{text!r} never logged; exit {proc.wait()}")


def test_interface_that_comes_up_later_is_waited_for(netpair):
    netpair.ip(netpair.sender_ns, "link", "set", netpair.SENDER_IF, "down")
    sender = netpair.sender("--address", "239.255.42.1", "--interval", "0.05", "--count", "3")
    line = wait_for_line(sender, "is not up: waiting up to")
    assert f"interface {netpair.SENDER_IF} is not up: waiting up to {source.START_WAIT:g} s" in line
    receiver = netpair.receiver("239.255.42.1", count=3)
    netpair.ip(netpair.sender_ns, "link", "set", netpair.SENDER_IF, "up")
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert "waiting up to" not in err  # logged once
    assert f"interface {netpair.SENDER_IF} is ready" in err
    assert [d["sequence"] for d in received(receiver)] == [0, 1, 2]


def test_tentative_bind_address_is_waited_for(netpair):
    """A new address with duplicate address detection (no nodad), as at boot."""
    address = str(netpair.sender6).replace("::1", "::77")
    for setting in ("accept_dad=1", "dad_transmits=1"):  # whatever the test namespaces default to
        subprocess.run(["ip", "netns", "exec", netpair.sender_ns, "sysctl", "-qw",
                        f"net.ipv6.conf.{netpair.SENDER_IF}.{setting}"], check=True)
    netpair.ip(netpair.sender_ns, "addr", "add", f"{address}/64", "dev", netpair.SENDER_IF)
    sender = netpair.sender("--bind-address", address, "--interval", "0.05", "--count", "3")
    line = wait_for_line(sender, "waiting up to")
    assert f"address not available on this host: {address}: waiting up to" in line
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert f"source [{address}]:4321" in err and "summary: 3 sent, 0 failed" in err


def test_an_interface_that_stays_down_is_exit_69_after_the_wait(netpair):
    netpair.ip(netpair.sender_ns, "link", "set", netpair.SENDER_IF, "down")
    started = time.monotonic()
    sender = netpair.sender("--count", "1")
    _, err = sender.communicate(timeout=source.START_WAIT + 20)
    assert sender.returncode == 69, err
    assert time.monotonic() - started >= source.START_WAIT
    fatal = [line for line in err.splitlines() if " fatal: " in line]
    assert len(fatal) == 1 and fatal[0].endswith(f"is not up (waited {source.START_WAIT:g} s)"), err
    assert err.count("waiting up to") == 1 and "Traceback" not in err


def test_usage_error_reaches_the_journal_as_err(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        code = run_program("--ttl", "999", stderr=stream, env=program_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert code.returncode == 64
    assert len(lines) == 1 and lines[0].startswith("<3>mping-sender: "), lines


def test_stop_signal_during_the_start_up_wait_stops_at_once(netpair):
    netpair.ip(netpair.sender_ns, "link", "set", netpair.SENDER_IF, "down")
    sender = netpair.sender("--address", "239.255.42.1")
    wait_for_line(sender, "is not up: waiting up to")
    code, _, err, took = stop(sender)
    assert code == 0 and took < 1.0, (code, took, err)
    assert "stop signal during the start-up wait" in err and "fatal" not in err, err


def installed_launcher(tmp_path) -> Path:
    """bin/mping-sender as installed, its package directory this tree."""
    launcher = tmp_path / "mping-sender"
    launcher.write_text((ROOT / "bin" / "mping-sender.in").read_text().replace("@LIBDIR@", str(ROOT)))
    return launcher


def test_early_stop_signals_are_stops_never_tracebacks(netpair, tmp_path):
    """SIGINT and SIGTERM at points all through start-up, run as installed
    (the launcher): the program stops (exit 0), or the signal came while the
    interpreter itself was starting (before the launcher's first line: the
    default action, or an error of the interpreter's naming none of our
    files), never a traceback of ours or another exit code."""
    launcher = installed_launcher(tmp_path)
    outcomes = set()
    for step in range(24):
        signum = signal.SIGINT if step % 2 == 0 else signal.SIGTERM
        sender = netpair.popen(netpair.sender_ns, [sys.executable, "-I", "-S", str(launcher), "--interface-name",
                                                   netpair.SENDER_IF, "--address", "239.255.42.1", "--interval", "0.05"])
        time.sleep(step * 0.003)
        sender.send_signal(signum)
        try:
            _, err = sender.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            sender.kill()
            _, err = sender.communicate()
            # CPython itself prints and then swallows a KeyboardInterrupt that
            # comes while it looks at argv[0], before the launcher's first line.
            assert "Failed checking if argv[0] is an import path entry" in err, (step, err)
            continue
        # Python's own start (its init, setting up __main__, the check for
        # signals before the launcher's first line: "line 0") runs no line of ours.
        ours = "mping_sender" in err or re.search(r'mping-sender", line [1-9]', err)
        interpreter_start = sender.returncode != 0 and not ours
        if not interpreter_start:
            assert sender.returncode == 0 and "Traceback" not in err, (step, sender.returncode, err)
        outcomes.add(sender.returncode)
    assert 0 in outcomes, outcomes


def one_source(err: str) -> str:
    return err.split(" source [", 1)[1].split("]:", 1)[0]


def test_a_unicast_destination_gets_a_source_of_its_own_scope(netpair):
    sender = netpair.sender("--allow-unicast", "--address", str(netpair.receiver6), "--count", "1", "--no-replies")
    _, err = sender.communicate(timeout=20)
    assert sender.returncode == 0, err
    assert one_source(err) == str(netpair.sender6), err


def test_sources_fit_the_destination_scope():
    link_local, unique_local, global_ = (ipaddress.ip_address(a) for a in ("fe80::1", "fd00::1", "2001:db8::1"))
    found = [link_local, unique_local, global_]
    assert source.fitting(ipaddress.ip_address("ff2e::42"), found) == [unique_local, global_]
    assert source.fitting(ipaddress.ip_address("ff05::42"), found) == [unique_local, global_]
    assert source.fitting(ipaddress.ip_address("ff02::42"), found)[0] == link_local
    assert source.fitting(ipaddress.ip_address("fd10::2"), found) == [unique_local, global_]
    assert source.fitting(ipaddress.ip_address("2001:db8:1::2"), found) == [unique_local, global_]
    assert source.fitting(ipaddress.ip_address("fe80::2"), found)[0] == link_local
    assert source.fitting(ipaddress.ip_address("ff2e::42"), [link_local]) == []


def test_a_wider_group_waits_for_a_source_wider_than_link_local(netpair):
    """At boot the global address is still tentative when the link-local one
    is ready: the wait is for the global one, never the link-local one."""
    ifname = netpair.SENDER_IF
    for setting in ("accept_dad=1", "dad_transmits=1"):
        subprocess.run(["ip", "netns", "exec", netpair.sender_ns, "sysctl", "-qw",
                        f"net.ipv6.conf.{ifname}.{setting}"], check=True)
    netpair.ip(netpair.sender_ns, "addr", "del", f"{netpair.sender6}/64", "dev", ifname)
    address = str(netpair.sender6).replace("::1", "::78")
    netpair.ip(netpair.sender_ns, "addr", "add", f"{address}/64", "dev", ifname)
    sender = netpair.sender("--address", "ff2e::42", "--interval", "0.05", "--count", "3", "--no-replies")
    line = wait_for_line(sender, "waiting up to")
    assert f"interface {ifname} has no usable IPv6 address wider than link-local for ff2e::42 (only fe80::" in line
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert one_source(err) == address, err


def test_a_failed_start_up_leaves_the_previous_statistics_and_a_run_replaces_them(netpair, tmp_path):
    require_sandbox()
    stats = tmp_path / "stats.json"
    previous = json.dumps({"previous": "run", "padding": " " * 20000})
    stats.write_text(previous)
    failed = netpair.sender("--count", "1", "--stats-json", str(stats), interface="nosuch0")
    _, err = failed.communicate(timeout=20)
    assert failed.returncode == 69, err
    assert stats.read_text() == previous
    sender = netpair.sender("--count", "2", "--interval", "0.01", "--sandbox", "require", "--stats-json", str(stats))
    _, err = sender.communicate(timeout=20)
    assert sender.returncode == 0, err
    assert json.loads(stats.read_text())["sent"] == 2  # the whole file: nothing of the longer previous one is left


def run_limited(pair, launcher: Path, limit: str, env=None, python: str = sys.executable) -> subprocess.CompletedProcess:
    """The installed launcher under a resource limit (prlimit), to its end."""
    proc = pair.popen(pair.sender_ns, [require_tool("prlimit"), limit, python, "-I", "-S", str(launcher),
                                       "--interface-name", pair.SENDER_IF, "--count", "2", "--interval", "0.01"],
                      env=env)
    _, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


def test_every_step_short_of_file_descriptors_is_named(netpair, tmp_path):
    launcher = installed_launcher(tmp_path)
    notify = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listening:
        listening.bind(str(notify))
        for env in (None, dict(os.environ, NOTIFY_SOCKET=str(notify))):
            for nofile in range(4, 13):
                result = run_limited(netpair, launcher, f"--nofile={nofile}", env)
                if result.returncode == 0:
                    continue
                fatal = [line for line in result.stderr.splitlines() if " fatal: " in line]
                assert result.returncode == 69 and len(fatal) == 1, (nofile, result.stderr)
                step = fatal[0].split(" fatal: ", 1)[1]
                assert not step.startswith("Too many open files") and "(EMFILE)" in step, (nofile, step)


# This interpreter, and the one the package's launcher names.
PYTHONS = [path for path in dict.fromkeys((sys.executable, "/usr/bin/python3")) if os.path.exists(path)]


@pytest.mark.parametrize("python", PYTHONS)
def test_too_little_memory_while_loading_is_one_line_and_exit_70(netpair, tmp_path, python):
    """What fails while the launcher loads the program (a frame of the
    launcher or the package, or its message) is one line and exit 70; what
    fails in the interpreter's own start, before the launcher's first line,
    is not ours, and what fails once the program runs (it has logged) is
    the other start-up steps' (test_hostile)."""
    launcher = installed_launcher(tmp_path)
    ours = 0
    for kilobytes in range(11000, 16000, 250):
        result = run_limited(netpair, launcher, f"--as={kilobytes * 1000}", python=python)
        if result.returncode == 0 or "mping" not in result.stderr or " info: " in result.stderr:
            continue
        assert result.returncode in (69, 70) and "Traceback" not in result.stderr, (kilobytes, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 3, result.stderr  # the line, after at most the start-up's
        ours += 1
    assert ours, "no limit tight enough to fail inside the program was tried"
