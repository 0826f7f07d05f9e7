"""Round trip: the real program against reflectors (tools/reflector.py) in
the other namespace, which drop, duplicate and delay replies on demand."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List

import pytest

from mping_sender import reply_stats
from helpers import started
from netns import received, stop
from prereq import require_tool


def messages(stderr: str, level: str = "") -> List[str]:
    """Log lines without their timestamp (and only ``level`` ones, if given)."""
    found = []
    for line in stderr.splitlines():
        _, _, rest = line.partition(" ")
        name, _, text = rest.partition(": ")
        if not level or name == level:
            found.append(text)
    return found


def by_address(report: dict) -> Dict[str, dict]:
    return {r["address"]: r for r in report["receivers"]}


def second_address(netpair) -> str:
    """Another IPv6 address in the receiver namespace, so two reflectors answer from two sources."""
    address = str(netpair.receiver6).rsplit(":", 1)[0] + ":3"
    netpair.ip(netpair.receiver_ns, "addr", "add", f"{address}/64", "dev", netpair.RECEIVER_IF, "nodad")
    return address


def test_two_reflectors_counts_loss_rtt_summary_and_json(netpair, tmp_path):
    first, second = str(netpair.receiver6), second_address(netpair)
    # first: drops 3 and 20-22, answers 7 twice, 5 after 0.3 s (overtaken: out of
    # order) and 12 after 2 s (long after the 20-datagram window: late).
    netpair.reflector("ff2e::42", "--drop", "3,20-22", "--duplicate", "7",
                      "--delay", "5=0.3", "--delay", "12=2", "--timeout", "3")
    # second: answers from sequence 10 on, so its loss counts from there.
    netpair.reflector("ff2e::42", "--drop", "0-9", "--timeout", "3", source=second)
    stats_path = tmp_path / "stats.json"
    sender = netpair.sender("--interval", "0.05", "--count", "60", "--receiver-timeout", "20",
                            "--log-level", "debug", "--stats-json", str(stats_path))
    _, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    assert "Traceback" not in err
    report = json.loads(stats_path.read_text())
    assert (report["group"], report["port"], report["sent"]) == ("ff2e::42", 4321, 60)
    got = by_address(report)
    assert set(got) == {first, second}
    ra, rb = got[first], got[second]
    assert (ra["first_sequence"], ra["expected"], ra["received"], ra["lost"], ra["duplicates"],
            ra["out_of_order"], ra["late"], ra["pending"]) == (0, 60, 55, 5, 1, 1, 1, 0)
    assert (rb["first_sequence"], rb["expected"], rb["received"], rb["lost"], rb["duplicates"],
            rb["out_of_order"], rb["late"]) == (10, 50, 50, 0, 0, 0, 0)
    assert ra["loss_percent"] == pytest.approx(100 * 5 / 60, abs=0.001) and rb["loss_percent"] == 0
    # Round-trip times from our own send times: the 0.3 s delay shows, the rest is quick.
    assert 0 < ra["rtt_ms"]["min"] <= ra["rtt_ms"]["avg"] < 300 <= ra["rtt_ms"]["max"] < 1000
    assert 0 < rb["rtt_ms"]["min"] <= rb["rtt_ms"]["avg"] <= rb["rtt_ms"]["max"] < 250
    # "own" is 0: the socket filter drops our looped-back datagrams in the kernel.
    assert report["totals"] == {"replies": 105, "duplicates": 1, "late": 1, "own": 0, "foreign": 0,
                                "malformed": 0, "overflow": 0, "evicted": 0, "kernel_dropped": 0,
                                "receivers": 2}
    # The summary says exactly what the JSON says, in ping's words.
    info = messages(err, "info")
    summary = reply_stats.summary_lines(report)
    start = info.index(summary[0])
    assert info[start:start + len(summary)] == summary
    assert "60 datagrams transmitted since its first reply (seq=0), 55 received, +1 duplicates, " \
           "1 out of order, 1 late, 8.333% loss" in summary
    news = [m for m in info if m.startswith("new receiver")]
    assert len(news) == 2, news
    assert re.fullmatch(rf"new receiver {re.escape(first)}: first reply seq=0 time=\d+\.\d\d ms", news[0])
    assert re.fullmatch(rf"new receiver {re.escape(second)}: first reply seq=10 time=\d+\.\d\d ms", news[1])
    debug = messages(err, "debug")
    assert any(re.fullmatch(rf"288 bytes from {re.escape(first)}: seq=17 ttl=64 time=\d+\.\d\d ms", m) for m in debug)
    assert any(re.fullmatch(rf"288 bytes from {re.escape(first)}: seq=7 ttl=64 time=\d+\.\d\d ms \(DUP!\)", m)
               for m in debug)
    assert any(re.fullmatch(rf"288 bytes from {re.escape(first)}: seq=5 ttl=64 time=3\d\d\.\d\d ms \(out of order\)",
                            m) for m in debug)
    assert f"288 bytes from {first}: seq=12 ttl=64 late (more than 20 datagrams after its request)" in debug
    assert not [m for m in debug if f"from {second}: seq=9 " in m]


@pytest.mark.parametrize("drop, code", [("", 0), ("9", 1), (None, 1)], ids=["all-answered", "last-dropped", "nobody"])
def test_expect_replies_ipv4_with_json_on_stdout(netpair, drop, code):
    if drop is not None:
        netpair.reflector("239.255.42.1", "--drop", drop, "--timeout", "2")
    started = time.monotonic()
    # A generous window (50 periods, 1 s): a busy machine must not turn replies late.
    sender = netpair.sender("--address", "239.255.42.1", "--interval", "0.02", "--count", "10",
                            "--receiver-timeout", "50", "--expect-replies", "--stats-json", "-")
    out, err = sender.communicate(timeout=30)
    seconds = time.monotonic() - started
    assert sender.returncode == code, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["sent"] == 10
    if drop is None:
        assert report["receivers"] == [] and "no receiver answered all 10 datagrams" in err
        return
    (receiver,) = report["receivers"]
    assert receiver["address"] == str(netpair.receiver4)
    if code == 0:
        # The sender waited for the reply to its last datagram, and no longer.
        assert (receiver["received"], receiver["lost"]) == (10, 0)
        assert seconds < 0.2 * 10 + 3
        assert "no receiver answered" not in err
    else:
        # The last reply never comes: it waits the whole window (50 x 0.02 s), then gives up.
        assert (receiver["received"], receiver["lost"], receiver["loss_percent"]) == (9, 1, 10.0)
        assert "--expect-replies: no receiver answered all 10 datagrams" in err


def test_silent_receiver_is_logged_once_and_its_return_noticed(netpair):
    netpair.reflector("ff2e::42", "--drop", "20-39", "--timeout", "2")
    sender = netpair.sender("--interval", "0.05", "--count", "60", "--stats-json", "-")
    out, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    info = messages(err, "info")
    address = str(netpair.receiver6)
    assert info.count(f"receiver {address} silent for more than 5 periods") == 1
    back = [m for m in info if m.startswith(f"receiver {address} answers again after")]
    assert len(back) == 1
    assert 0.5 < float(back[0].split("after ")[1].split(" s")[0]) < 3.0, back
    (r,) = json.loads(out)["receivers"]
    assert (r["received"], r["lost"], r["silent"]) == (40, 20, False)


def test_sigusr1_adds_the_reply_summary_and_sigterm_writes_the_json(netpair, tmp_path):
    netpair.reflector("ff2e::42", "--timeout", "3")
    stats_path = tmp_path / "stats.json"
    sender = netpair.sender("--interval", "0.05", "--stats-json", str(stats_path))
    log = started(sender, "new receiver")
    # Opened at start-up (the sandbox forbids opening files later), written at exit.
    assert stats_path.exists() and stats_path.read_text() == ""
    sender.send_signal(signal.SIGUSR1)
    log += started(sender, "mping totals")
    assert sender.poll() is None
    code, _, err, _ = stop(sender, signal.SIGTERM)
    err = log + err
    assert code == 0, err
    info = messages(err, "info")
    assert info.count(f"--- {netpair.receiver6} mping statistics ---") == 2
    assert info.count("--- [ff2e::42]:4321 mping totals ---") == 2
    report = json.loads(stats_path.read_text())
    final = [m for m in info if m.startswith("summary:")][-1]
    assert final.startswith(f"summary: {report['sent']} sent, 0 failed")
    (r,) = report["receivers"]
    assert r["received"] >= report["sent"] - 1 and report["sent"] >= 1


def sockets_on_port(netpair, port: int = 4321) -> int:
    require_tool("ss")
    out = subprocess.run(["ip", "netns", "exec", netpair.sender_ns, "ss", "-Hanu", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


@pytest.mark.parametrize("no_replies", [False, True], ids=["replies", "no-replies"])
def test_no_replies_skips_the_second_socket(netpair, no_replies):
    netpair.reflector("ff2e::42", "--timeout", "2")
    sender = netpair.sender("--interval", "0.05", *(["--no-replies"] if no_replies else []))
    log = started(sender, "sandbox:" if no_replies else "new receiver")  # every socket is open before the sandbox
    # The reply socket shares the group's port with the transmit socket (bind port == port).
    assert sockets_on_port(netpair) == (1 if no_replies else 2)
    code, _, err, _ = stop(sender)
    err = log + err
    assert code == 0, err
    assert ("mping statistics" in err) != no_replies
    assert ("new receiver" in err) != no_replies


def test_an_unwritable_stats_path_is_one_line_exit_69(netpair, tmp_path):
    sender = netpair.sender("--count", "1", "--stats-json", str(tmp_path / "missing" / "stats.json"))
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 69
    assert "--stats-json: cannot open" in err and "No such file or directory" in err
    assert "Traceback" not in err


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:  # `ip netns exec` execs: the PID is the program's
        assert b"mping_sender" in cmdline.read()
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_fuzzed_replies_are_dropped_while_the_sender_keeps_sending(netpair, tmp_path):
    fuzzer_address = second_address(netpair)
    stats_path = tmp_path / "stats.json"
    receiver = netpair.receiver("ff2e::42", timeout=3)
    netpair.reflector("ff2e::42", "--timeout", "3")
    sender = netpair.sender("--interval", "0.01", "--stats-json", str(stats_path), "--sandbox", "require")
    log = started(sender, "new receiver")  # under way, the reflector's replies counted
    fuzzer = netpair.reflector("ff2e::42", "--fuzz", "8", source=fuzzer_address)
    time.sleep(2.0)  # let the flood reach its steady state before the first reading
    early = vm_rss_kib(sender.pid)
    readings = []
    while fuzzer.poll() is None:
        readings.append(vm_rss_kib(sender.pid))
        time.sleep(0.5)
    fuzzed = int(fuzzer.communicate(timeout=10)[0].split()[1])
    assert sender.poll() is None, "the flood must not end the sender"
    code, _, err, _ = stop(sender)
    err = log + err
    assert code == 0 and "Traceback" not in err, err
    report = json.loads(stats_path.read_text())
    totals = report["totals"]
    assert fuzzed > 10000 and totals["malformed"] > 1000 and totals["foreign"] > 100, (fuzzed, totals)
    assert totals["receivers"] <= 2
    # Memory stays flat: no reading after the warm-up grows by more than 1 MiB.
    assert readings and max(readings) - early < 1024, (early, readings)
    # The receiver saw every datagram the sender sent, in order, while the flood lasted.
    datagrams = received(receiver, sender_done=True)
    ours = [d for d in datagrams if d.get("peer") == str(netpair.sender6) and d.get("type") == "s"]
    sequences = [d["sequence"] for d in ours]
    assert sequences == list(range(len(sequences)))
    assert len(sequences) == report["sent"] and report["sent"] > 600
    # ... on schedule: reading at most 64 datagrams per wake-up keeps the flood from holding it up.
    summary = next(m for m in messages(err) if m.startswith("summary:"))
    skipped = int(re.search(r"(\d+) slots skipped", summary).group(1))
    assert skipped <= report["sent"] // 10, summary
    assert by_address(report)[str(netpair.receiver6)]["received"] > 0


def test_a_taken_port_is_one_line_exit_69_with_a_hint(netpair):
    holder = netpair.popen(netpair.sender_ns, [sys.executable, "-c",
                           "import socket, sys, time; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
                           "s.bind(('::', 4321)); print('ready', file=sys.stderr, flush=True); time.sleep(30)"])
    assert holder.stderr is not None and holder.stderr.readline().strip() == "ready"
    sender = netpair.sender("--count", "1", "--bind-port", "0")
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 69
    assert "cannot open the reply socket on port 4321: Address already in use" in err
    assert "--no-replies" in err and "Traceback" not in err
    sender = netpair.sender("--count", "1", "--bind-port", "0", "--no-replies")
    assert sender.wait(timeout=30) == 0


def test_another_sender_on_our_source_and_port_is_logged_once(netpair):
    first = netpair.sender("--interval", "0.02", "--count", "100")
    second = netpair.sender("--interval", "0.02", "--count", "100")
    logs = [proc.communicate(timeout=30)[1] for proc in (first, second)]
    assert [proc.returncode for proc in (first, second)] == [0, 0], logs
    ids = [re.search(r", id (0x[0-9a-f]{8})", log).group(1) for log in logs]
    for log, other in zip(logs, reversed(ids)):
        lines = [m for m in messages(log, "warning") if m.startswith("another sender")]
        assert lines == [f"another sender (id {other}) sends to [ff2e::42]:4321 from our own source "
                         f"[{netpair.sender6}]:4321: receivers can tell the two apart only by id"], log
