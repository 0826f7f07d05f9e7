"""The real program between two network namespaces, both address families."""

from __future__ import annotations

import re
import signal

import pytest

from helpers import started
from netns import received, stop

FAMILIES = {
    "ipv6": {"group": "ff2e::42", "source": "sender6"},
    "ipv4": {"group": "239.255.42.1", "source": "sender4"},
}


def summary_counts(log: str):
    """(sent, failed) from the sender's summary line."""
    match = re.search(r"summary: (\d+) sent, (\d+) failed", log)
    assert match, log
    return int(match.group(1)), int(match.group(2))


def assert_contiguous(datagrams, start=0):
    sequences = [d["sequence"] for d in datagrams]
    assert sequences == list(range(start, start + len(sequences))), sequences


@pytest.mark.parametrize("family", FAMILIES)
def test_every_datagram_arrives_with_the_right_fields(netpair, family):
    group = FAMILIES[family]["group"]
    source = str(getattr(netpair, FAMILIES[family]["source"]))
    receiver = netpair.receiver(group, count=20)
    sender = netpair.sender("--address", group, "--interval", "0.05", "--count", "20", "--ttl", "7")
    out, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    datagrams = received(receiver)
    assert len(datagrams) == 20
    assert_contiguous(datagrams)
    assert len({d["id"] for d in datagrams}) == 1
    for d in datagrams:
        assert "error" not in d
        assert (d["version"], d["type"], d["ttl"], d["hop_limit"], d["length"]) == ("2.0", "s", 7, 7, 288)
        assert (d["source"], d["source_port"], d["peer"], d["peer_port"]) == (source, 4321, source, 4321)
        assert (d["destination"], d["destination_port"]) == (group, 4321)
    assert "summary: 20 sent, 0 failed, 0 slots skipped" in err
    assert "Traceback" not in err


def test_version_payload_ports_and_explicit_bind_address(netpair):
    receiver = netpair.receiver("ff3e::8000:42", count=3, port=5000)
    sender = netpair.sender("--address", "ff3e::8000:42", "--port", "5000", "--bind-port", "6000",
                            "--bind-address", str(netpair.sender6), "--mping-version", "2.1",
                            "--payload-size", "1760", "--interval", "0.05", "--count", "3")
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    datagrams = received(receiver)
    assert [(d["version"], d["length"], d["payload_size"], d["source_port"], d["destination_port"])
            for d in datagrams] == [("2.1", 2048, 1760, 6000, 5000)] * 3


def test_timestamps_are_the_monotonic_clock_on_the_schedule(netpair):
    receiver = netpair.receiver("ff2e::42", count=20)
    sender = netpair.sender("--interval", "0.05", "--count", "20", "--log-level", "trace")
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    datagrams = received(receiver)
    assert len(datagrams) == 20
    stamps = [d["seconds"] + d["microseconds"] / 1e6 for d in datagrams]
    # CLOCK_MONOTONIC, which the namespaces share: each stamp is shortly
    # before the receiver's own reading of the clock on arrival.
    assert all(0 <= d["arrival"] - stamp < 5 for d, stamp in zip(datagrams, stamps)), (datagrams, stamps)
    # Each datagram against its own slot (the sender's trace says which),
    # on the grid through the most punctual one: the grid is absolute, so
    # the typical datagram is on it, whatever a busy machine did to a few.
    slots = [int(slot) for slot in re.findall(r"sent seq=\d+ slot=(\d+) ", err)]
    assert len(slots) == 20, err
    t0 = min(stamp - slot * 0.05 for stamp, slot in zip(stamps, slots))
    lateness = sorted(stamp - (t0 + slot * 0.05) for stamp, slot in zip(stamps, slots))
    assert lateness[10] < 0.002, lateness


def test_sigterm_stops_promptly_with_summary(netpair):
    receiver = netpair.receiver("ff2e::42", timeout=30)
    # A long interval: the signal must wake select(), not wait for the next tick.
    sender = netpair.sender("--interval", "30", "--log-level", "trace")
    log = started(sender, "sent seq=0 ")
    code, _, err, seconds = stop(sender, signal.SIGTERM, timeout=20)
    log += err
    assert code == 0 and seconds < 10, (code, seconds, log)
    assert "received SIGTERM, stopping" in log
    assert "summary: 1 sent, 0 failed, 0 slots skipped" in log
    assert len(received(receiver, sender_done=True)) == 1


def test_sigint_stops_and_sigusr1_reports_and_continues(netpair):
    receiver = netpair.receiver("ff2e::42", timeout=30)
    sender = netpair.sender("--interval", "0.05", "--log-level", "trace")
    log = started(sender, "sent seq=2 ")  # the handlers are in place long before
    sender.send_signal(signal.SIGUSR1)
    log += started(sender, "summary:")
    sent_then = summary_counts(log)[0]
    log += started(sender, f"sent seq={sent_then + 2} ")  # SIGUSR1 did not stop it
    code, _, err, _ = stop(sender, signal.SIGINT, timeout=20)
    log += err
    assert code == 0, log
    assert log.count("summary:") == 2 and "Traceback" not in log
    datagrams = received(receiver, sender_done=True)
    assert len(datagrams) == summary_counts(err)[0] >= sent_then + 3
    assert_contiguous(datagrams)


# What breaks sending, and what repairs it: IPv4 loses the bound source
# address (EADDRNOTAVAIL / EINVAL), IPv6 the multicast route (ENETUNREACH).
BREAKAGE = {
    "ipv4": (["addr", "del", "{source}/24", "dev", "snd0"], ["addr", "add", "{source}/24", "dev", "snd0"]),
    "ipv6": (["route", "del", "ff00::/8", "dev", "snd0", "table", "local"],
             ["route", "add", "ff00::/8", "dev", "snd0", "table", "local"]),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_send_failures_are_logged_once_counted_and_survived(netpair, family):
    group = FAMILIES[family]["group"]
    source = str(getattr(netpair, FAMILIES[family]["source"]))
    receiver = netpair.receiver(group, timeout=30)
    sender = netpair.sender("--address", group, "--interval", "0.05", "--log-level", "trace")
    log = started(sender, "sent seq=2 ")
    breaking, repairing = ([word.format(source=source) for word in command] for command in BREAKAGE[family])
    netpair.ip(netpair.sender_ns, *breaking)
    log += started(sender, "send failed")
    netpair.ip(netpair.sender_ns, *repairing)
    log += started(sender, "sending resumed after")
    sent_by_then = int(re.findall(r"sent seq=(\d+) ", log)[-1]) + 1
    log += started(sender, f"sent seq={sent_by_then + 2} ")
    assert sender.poll() is None, "a send error must not end the sender"
    code, _, err, _ = stop(sender, timeout=20)
    log += err
    assert code == 0, log
    assert log.count("send failed") == 1, log
    assert "Traceback" not in log
    sent, failed = summary_counts(err)
    assert failed >= 1, log
    # The sequence advances only for datagrams the kernel took: the receiver
    # sees every one of them, contiguous across the outage.
    datagrams = received(receiver, sender_done=True)
    assert len(datagrams) == sent
    assert_contiguous(datagrams)


def test_no_resource_warnings_in_development_mode(netpair, tmp_path):
    """Under `python3 -X dev -W error` every socket and the stats file are
    closed on the way out: no ResourceWarning, nothing printed but the log."""
    netpair.reflector("ff2e::42", "--timeout", "3")
    stats = tmp_path / "stats.json"
    sender = netpair.sender("--interval", "0.05", "--count", "3", "--stats-json", str(stats),
                            python_options=["-X", "dev", "-W", "error"])
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert "Warning" not in err and "Exception ignored" not in err, err
    assert '"received": 3' in stats.read_text()
