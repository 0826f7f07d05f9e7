"""Start-up on a host that is still coming up: an interface that is not up
yet and an IPv6 address still in duplicate address detection are waited
for (bounded, logged once); what never comes is exit 69, which the unit
restarts. And a bad command line under systemd reaches the journal as err."""

from __future__ import annotations

import os
import subprocess
import time

from mping_sender import cli
from helpers import program_env, run_program
from netns import received



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
    assert f"interface {netpair.SENDER_IF} is not up: waiting up to {cli.START_WAIT:g} s" in line
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
    _, err = sender.communicate(timeout=cli.START_WAIT + 20)
    assert sender.returncode == 69, err
    assert time.monotonic() - started >= cli.START_WAIT
    fatal = [line for line in err.splitlines() if " fatal: " in line]
    assert len(fatal) == 1 and fatal[0].endswith(f"is not up (waited {cli.START_WAIT:g} s)"), err
    assert err.count("waiting up to") == 1 and "Traceback" not in err


def test_usage_error_reaches_the_journal_as_err(tmp_path):
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        code = run_program("--ttl", "999", stderr=stream, env=program_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    lines = (tmp_path / "stderr").read_text().splitlines()
    assert code.returncode == 64
    assert len(lines) == 1 and lines[0].startswith("<3>mping-sender: "), lines
