"""sd_notify: the real program, in a namespace pair, talking to a real AF_UNIX
datagram socket that stands in for systemd's."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import List

import pytest

from mping_sender import notify

from helpers import string_log
from netns import stop


def bound_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    return sock


def messages(sock: socket.socket, until: str) -> List[str]:
    """Every message up to and including the first one containing `until`."""
    got: List[str] = []
    while not got or until not in got[-1]:
        got.append(sock.recv(4096).decode())
    return got


def test_ready_watchdog_status_and_stopping_in_order(netpair, tmp_path):
    path = str(tmp_path / "notify")
    with bound_socket(path) as sock:
        sender = netpair.sender("--interval", "0.05", "--count", "20",
                                env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        got = messages(sock, "STOPPING=1")
        _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert got[0] == "READY=1\nSTATUS=sent 0, failed 0"
    pings = [m for m in got[1:-1] if m.startswith("WATCHDOG=1\nSTATUS=sent ")]
    # 20 datagrams at 50 ms take about 1 s; a ping every 100 ms.
    assert len(pings) >= 4 and len(pings) == len(got) - 2, got
    assert got[-1] == "STOPPING=1\nSTATUS=sent 20, failed 0"


# Abstract socket names belong to a network namespace: systemd's listener
# must live in the sender's, so a small listener runs there.
ABSTRACT_LISTENER = """
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\\0" + sys.argv[1])
sock.settimeout(10)
print("ready", flush=True)
while True:
    message = sock.recv(4096).decode()
    print(json.dumps(message), flush=True)
    if message.startswith("STOPPING=1"):
        break
"""


def test_abstract_socket_and_stop_by_signal(netpair):
    name = f"mping-sender-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = netpair.popen(netpair.sender_ns, [sys.executable, "-c", ABSTRACT_LISTENER, name])
    assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
    sender = netpair.sender("--interval", "0.05", env={"NOTIFY_SOCKET": "@" + name})
    assert json.loads(listener.stdout.readline()) == "READY=1\nSTATUS=sent 0, failed 0"
    code, _, err, _ = stop(sender)
    assert code == 0, err
    out, _ = listener.communicate(timeout=10)
    got = [json.loads(line) for line in out.splitlines()]
    # No WATCHDOG_USEC: no pings, only the final message.
    assert len(got) == 1 and got[0].startswith("STOPPING=1\nSTATUS=sent "), got


def test_watchdog_for_another_pid_is_not_ours(netpair, tmp_path):
    path = str(tmp_path / "notify")
    with bound_socket(path) as sock:
        sender = netpair.sender("--interval", "0.05", "--count", "10",
                                env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
        got = messages(sock, "STOPPING=1")
        assert sender.wait(timeout=30) == 0
    assert [m.split("\n")[0] for m in got] == ["READY=1", "STOPPING=1"]


def test_unreachable_socket_is_logged_and_survived(netpair, tmp_path):
    sender = netpair.sender("--interval", "0.05", "--count", "5", env={"NOTIFY_SOCKET": str(tmp_path / "none")})
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert "cannot connect to NOTIFY_SOCKET" in err and "summary: 5 sent" in err


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "43"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "x"}, None),
    ({"WATCHDOG_USEC": "1"}, notify.MIN_WATCHDOG_PERIOD),  # not a busy loop
])
def test_watchdog_period(environ, expected):
    assert notify.watchdog_period(environ, 42) == expected


def test_addresses_and_no_socket_without_notify_socket():
    assert notify.socket_address("@sd") == "\0sd"
    assert notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify.socket_address("vsock:2:1") is None
    log, lines = string_log()
    assert notify.from_environment({}, log) is None
    assert lines.getvalue() == ""
    assert notify.from_environment({"NOTIFY_SOCKET": "relative"}, log) is None
    assert lines.getvalue() == "<4>NOTIFY_SOCKET=relative is not a UNIX socket address; not notifying systemd\n"
