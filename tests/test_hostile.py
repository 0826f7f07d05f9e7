"""Hostile input and faults (issue 11): what an attacker on the path or a
careless operator can do, each class with a real test (sockets on lo or in
network namespaces, real signals, qdiscs, forged packets)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import time

from mping_sender import sender, transmit, wire
from mping_sender.linkwatch import InterfaceWatch
from mping_sender.signals import Coalescer, SignalPipe

LOG = logging.getLogger("test-hostile")


def loopback_sender(receiver: socket.socket, count: int) -> sender.Sender:
    """A Sender on lo aimed at ``receiver`` (unicast to 127.0.0.1)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    source = ipaddress.ip_address("127.0.0.1")
    target = receiver.getsockname()
    watch = InterfaceWatch(sock, "lo", socket.if_nametoindex("lo"), LOG)
    prefix = wire.encode_prefix("2.0", wire.TYPE_SENDER, 1, (source, sock.getsockname()[1]), (source, target[1]))
    transmitter = transmit.Transmitter(sock, source, target[1], 0)
    return sender.Sender(transmitter, watch, prefix, 1, 0, 0.001, count, LOG)


def run_loop(loop: sender.Sender) -> None:
    signals = SignalPipe([])
    try:
        loop.run(signals)
    finally:
        signal.set_wakeup_fd(-1)


def test_a_raising_sent_hook_never_repeats_a_sequence_number():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        loop = loopback_sender(receiver, 6)
        seen = []

        def raising(sequence: int, sent_ns: int) -> None:
            if sequence in (1, 3):
                raise RuntimeError("hook failed")

        loop.sent_hooks += [raising, lambda sequence, sent_ns: seen.append(sequence)]
        run_loop(loop)
        loop._transmitter.sock.close()
        sequences = [wire.decode(receiver.recv(4096)).sequence for _ in range(6)]
    assert sequences == [0, 1, 2, 3, 4, 5]
    assert seen == [0, 1, 2, 3, 4, 5], "one hook raising must not keep the next from running"
    assert loop.counters.sent == 6 and loop.counters.failed == 0


def started(proc, marker: str = "sandbox:") -> str:
    """Read the sender's log until it is about to enter the loop; return what was read."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError("the sender did not start:\n" + "".join(seen) + (proc.stderr.read() or ""))


def test_summary_requests_are_coalesced_to_one_a_second():
    summaries = Coalescer(1.0)
    assert summaries.request(10.0)
    assert [summaries.request(10.0 + i / 10) for i in range(1, 10)] == [False] * 9
    assert not summaries.due(10.95)
    assert summaries.due(11.0) and not summaries.due(11.5), "nine requests, one deferred summary"
    assert not summaries.due(20.0), "nothing deferred, nothing due"
    assert summaries.request(20.0)


def test_sigterm_is_never_lost_in_a_sigusr1_storm(netpair):
    proc = netpair.sender("--interval", "0.01", "--no-replies")
    log = started(proc)
    storm_until = time.monotonic() + 1.5
    stopped_at = time.monotonic() + 0.75
    sent_term = False
    kills = 0
    while time.monotonic() < storm_until and proc.poll() is None:
        for _ in range(1000):  # keep the wakeup pipe full
            os.kill(proc.pid, signal.SIGUSR1)
        kills += 1000
        if not sent_term and time.monotonic() >= stopped_at:
            os.kill(proc.pid, signal.SIGTERM)  # in the middle of the storm
            sent_term = True
    _, err = proc.communicate(timeout=10)
    log += err
    assert sent_term and kills > 65536, kills
    assert proc.returncode == 0, log
    assert "received SIGTERM, stopping" in log and "Traceback" not in log
    # At most one summary a second while the storm lasted, plus the final one.
    assert 2 <= log.count("summary:") <= 4, log.count("summary:")


def test_sighup_stops_with_the_summary_and_the_statistics(netpair, tmp_path):
    path = tmp_path / "stats.json"
    proc = netpair.sender("--interval", "0.05", "--stats-json", str(path), "--log-level", "trace")
    started(proc, "sent seq=2 ")
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "received SIGHUP, stopping" in err and "summary:" in err
    report = json.loads(path.read_text())
    assert report["sent"] >= 3 and report["group"] == "ff2e::42"


def test_a_stop_signal_during_start_up_is_kept_for_the_loop(netpair, tmp_path):
    path = tmp_path / "stats.json"
    proc = netpair.sender("--interval", "0.05", "--stats-json", str(path))
    started(proc, "mping-sender ")  # the version line: signals are caught by now, the loop not yet running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "received SIGTERM, stopping" in err, err
    assert json.loads(path.read_text())["sent"] <= 1
