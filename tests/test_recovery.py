"""Field faults, asserted from the receiver's side: the sender survives each
one by itself and sends again within two periods of the repair, with a
contiguous sequence and one log line per change of state."""

from __future__ import annotations

import errno
import ipaddress
import json
import math
import os
import re
import signal
import time
import types

from typing import Tuple

import pytest

from mping_sender.cli import WATCH_PERIOD
from mping_sender.eventloop import LoopErrors
from mping_sender.linkwatch import SourceRenumbered, SourceWatch
from mping_sender.ratelimit import BURST
from mping_sender.sender import FailureLog
from helpers import started, string_log
from netns import ip, received, stop
from test_end_to_end import FAMILIES, assert_contiguous, summary_counts

INTERVAL = 0.5
SANDBOX = ["--sandbox", "require"]  # every fault is survived inside the full sandbox
MACVLAN = "mv0"


def add_macvlan(pair) -> dict:
    """A macvlan on the sender's veth end, with addresses of its own: it can be
    deleted and recreated (new ifindex) while the veth, and so the receiver,
    stay as they are."""
    net = str(pair.sender4).split(".")[1]
    addresses = {"ipv4": f"10.{net}.0.3", "ipv6": f"fd00:{int(net):x}::3"}
    create_macvlan(pair, addresses)
    pair.wait_ipv6_ready()
    return addresses


def create_macvlan(pair, addresses: dict) -> None:
    pair.ip(pair.sender_ns, "link", "add", MACVLAN, "link", pair.SENDER_IF, "type", "macvlan", "mode", "bridge")
    pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv4']}/24", "dev", MACVLAN)
    pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv6']}/64", "dev", MACVLAN, "nodad")
    pair.ip(pair.sender_ns, "link", "set", MACVLAN, "up")


def outage(pair, family, breaks, repairs, *, expect_failures=True, noticed_within=INTERVAL):
    """Run the sender through one fault and its repair; return its log and the
    seconds from the end of the repair to the next datagram at the receiver.
    ``noticed_within``: a fault that makes no send fail is noticed by a look
    of the sender's own, up to this long after it."""
    addresses = add_macvlan(pair)
    group = FAMILIES[family]["group"]
    receiver = pair.receiver(group, timeout=10)
    sender = pair.sender("--address", group, "--interval", str(INTERVAL), *SANDBOX, interface=MACVLAN)
    arrivals_after(receiver, 0, 2)  # under way
    broken = time.monotonic()
    breaks(pair, addresses)
    time.sleep(4 * INTERVAL)  # the fault lasts this long
    repairs(pair, addresses)
    repaired = time.monotonic()
    log = started(sender, "sending resumed") if expect_failures else ""
    arrivals_after(receiver, repaired, 2)
    assert sender.poll() is None, "the sender must survive the fault"
    code, _, err, _ = stop(sender)
    err = log + err
    assert code == 0 and "Traceback" not in err, err
    datagrams = received(receiver, sender_done=True)
    sent, failed = summary_counts(err)
    assert len(datagrams) == sent
    assert_contiguous(datagrams)
    arrivals = [d["arrival"] for d in datagrams]
    during = [a for a in arrivals if broken + noticed_within < a < repaired]
    if expect_failures:
        assert failed >= 2 and not during, (failed, during, err)
        assert err.count("send failed") == 1 and err.count("sending resumed") == 1, err
    else:
        assert failed == 0 and during, err
    return err, min(a for a in arrivals if a > repaired) - repaired


@pytest.mark.parametrize("family", FAMILIES)
def test_link_down_then_up(netpair, family):
    def down(pair, _):
        pair.ip(pair.sender_ns, "link", "set", MACVLAN, "down")

    def up(pair, addresses):
        pair.ip(pair.sender_ns, "link", "set", MACVLAN, "up")
        if family == "ipv6":  # IPv6 drops its global addresses with the link
            pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv6']}/64", "dev", MACVLAN, "nodad")

    err, resumed_after = outage(netpair, family, down, up)
    assert resumed_after < 2 * INTERVAL, resumed_after
    assert err.count(f"interface {MACVLAN} is down") == 1, err


def exit_for_restart(sender, log: list, since: float) -> Tuple[str, str]:
    """The sender's exit after its interface came back: the summary, then one
    fatal line, exit 69 soon after ``since``; returns that line and the whole log."""
    _, rest = sender.communicate(timeout=10)
    exited_after = time.monotonic() - since
    err = "".join(log) + rest
    assert sender.returncode == 69 and "Traceback" not in err, err
    assert exited_after < 2 * WATCH_PERIOD + 1, (exited_after, err)  # room for a busy machine
    fatal = [line for line in err.splitlines() if "fatal:" in line]
    assert len(fatal) == 1, err
    assert "the sockets cannot be set up again inside the sandbox; exiting for a restart" in fatal[0], err
    assert err.index("summary:") < err.index("fatal:"), "the summary comes first"
    return fatal[0], err


def index_of(pair, name: str) -> str:
    return pair.ip(pair.sender_ns, "-o", "link", "show", name).stdout.split(":")[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_interface_deleted_and_recreated_is_an_exit_for_a_restart(netpair, family):
    addresses = add_macvlan(netpair)
    index = index_of(netpair, MACVLAN)
    sender = netpair.sender("--address", FAMILIES[family]["group"], "--interval", str(INTERVAL), *SANDBOX,
                            interface=MACVLAN)
    log = [started(sender)]
    netpair.ip(netpair.sender_ns, "link", "del", MACVLAN)
    log.append(started(sender, f"interface {MACVLAN} is gone"))
    create_macvlan(netpair, addresses)
    line, _ = exit_for_restart(sender, log, time.monotonic())
    assert re.search(rf"interface {MACVLAN} was re-created \(index \d+, was {index}\)", line), line


@pytest.mark.parametrize("family", FAMILIES)
def test_interface_moved_to_another_namespace_and_back_is_an_exit_never_a_loss(netpair, family):
    # Back under the same index, but the reply socket's membership went with
    # it: replies would stop, and be counted as lost.
    add_macvlan(netpair)
    group = FAMILIES[family]["group"]
    netpair.reflector(group, "--timeout", "10")
    sender = netpair.sender("--address", group, "--interval", "0.2", *SANDBOX, interface=MACVLAN)
    log = [started(sender, "new receiver")]
    index = index_of(netpair, MACVLAN)
    elsewhere = f"{netpair.tag}-o"
    ip("netns", "add", elsewhere)
    try:
        netpair.ip(netpair.sender_ns, "link", "set", MACVLAN, "netns", elsewhere)
        log.append(started(sender, f"interface {MACVLAN} is gone"))
        ip("-n", elsewhere, "link", "set", MACVLAN, "netns", netpair.sender_ns)
        back = time.monotonic()
        assert index_of(netpair, MACVLAN) == index, "the kernel gives the index back when it is free"
        line, err = exit_for_restart(sender, log, back)
    finally:
        ip("netns", "del", elsewhere, check=False)
    assert f"interface {MACVLAN} is back with index {index} after it left this network namespace" in line, line
    losses = re.findall(r"([\d.]+)% loss", err)
    assert losses and all(float(loss) == 0 for loss in losses), err


@pytest.mark.parametrize("family", FAMILIES)
def test_a_move_and_back_between_two_looks_is_found_by_the_membership(netpair, family):
    # The sender stopped while the interface leaves and comes back, up and
    # addressed again: it never sees it gone, only its membership missing.
    addresses = add_macvlan(netpair)
    group = FAMILIES[family]["group"]
    sender = netpair.sender("--address", group, "--interval", str(INTERVAL), *SANDBOX, interface=MACVLAN)
    log = [started(sender)]
    index = index_of(netpair, MACVLAN)
    elsewhere = f"{netpair.tag}-o"
    ip("netns", "add", elsewhere)
    sender.send_signal(signal.SIGSTOP)
    try:
        netpair.ip(netpair.sender_ns, "link", "set", MACVLAN, "netns", elsewhere)
        ip("-n", elsewhere, "link", "set", MACVLAN, "netns", netpair.sender_ns)
        netpair.ip(netpair.sender_ns, "addr", "add", f"{addresses['ipv4']}/24", "dev", MACVLAN)
        netpair.ip(netpair.sender_ns, "addr", "add", f"{addresses['ipv6']}/64", "dev", MACVLAN, "nodad")
        netpair.ip(netpair.sender_ns, "link", "set", MACVLAN, "up")
        netpair.wait_ipv6_ready()
        assert index_of(netpair, MACVLAN) == index
    finally:
        sender.send_signal(signal.SIGCONT)
        ip("netns", "del", elsewhere, check=False)
    line, err = exit_for_restart(sender, log, time.monotonic())
    assert f"interface {MACVLAN} (index {index}) lost the group membership of its sockets" in line, line
    assert "is gone" not in err, err


@pytest.mark.parametrize("family", FAMILIES)
def test_a_renamed_interface_is_followed_by_its_index(netpair, family):
    add_macvlan(netpair)
    group = FAMILIES[family]["group"]
    receiver = netpair.receiver(group, timeout=10)
    sender = netpair.sender("--address", group, "--interval", str(INTERVAL), *SANDBOX, interface=MACVLAN)
    log = [started(sender)]
    index = index_of(netpair, MACVLAN)
    netpair.ip(netpair.sender_ns, "link", "set", "dev", MACVLAN, "name", "wan0")  # live: Linux 6.2+
    log.append(started(sender, f"interface {MACVLAN} (index {index}) is now called wan0: following it"))
    # A new interface under the old name is another one: the sender stays on its index.
    netpair.ip(netpair.sender_ns, "link", "add", MACVLAN, "link", netpair.SENDER_IF, "type", "macvlan")
    arrivals_after(receiver, time.monotonic() + WATCH_PERIOD, 2)  # past the next look at the interface
    code, _, rest, _ = stop(sender)
    err = "".join(log) + rest
    assert code == 0 and "Traceback" not in err, err
    datagrams = received(receiver, sender_done=True)
    assert_contiguous(datagrams)
    assert len(datagrams) == summary_counts(err)[0] and summary_counts(err)[1] == 0, err
    assert err.count("is now called wan0") == 1, err
    assert "is gone" not in err and "no longer usable" not in err, err


def test_ipv4_bind_address_removed_and_re_added(netpair):
    def remove(pair, addresses):
        pair.ip(pair.sender_ns, "addr", "del", f"{addresses['ipv4']}/24", "dev", MACVLAN)

    def re_add(pair, addresses):
        pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv4']}/24", "dev", MACVLAN)

    _, resumed_after = outage(netpair, "ipv4", remove, re_add)
    assert resumed_after < 2 * INTERVAL, resumed_after


def test_ipv6_bind_address_removed_and_re_added(netpair):
    # Linux keeps sending IPv6 multicast from a bound address that is gone;
    # the sender notices (the kernel's address table, looked at once a
    # second, after the send of that tick) and counts an outage; while it
    # lasts, the table is looked at before every send, so sending resumes at
    # the first slot after the repair.
    def remove(pair, addresses):
        pair.ip(pair.sender_ns, "addr", "del", f"{addresses['ipv6']}/64", "dev", MACVLAN)

    def re_add(pair, addresses):
        pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv6']}/64", "dev", MACVLAN, "nodad")

    err, resumed_after = outage(netpair, "ipv6", remove, re_add, noticed_within=WATCH_PERIOD + INTERVAL)
    assert resumed_after < 2 * INTERVAL, resumed_after
    assert err.count("is no longer usable on mv0") == 1 and err.count("is usable again") == 1, err


def test_ipv6_multicast_route_removed_and_restored(netpair):
    def remove(pair, _):
        pair.ip(pair.sender_ns, "route", "del", "ff00::/8", "dev", MACVLAN, "table", "local")

    def restore(pair, _):
        pair.ip(pair.sender_ns, "route", "add", "ff00::/8", "dev", MACVLAN, "table", "local")

    err, resumed_after = outage(netpair, "ipv6", remove, restore)
    assert resumed_after < 2 * INTERVAL, resumed_after
    assert "Network is unreachable" in err


def test_ipv4_needs_no_route_to_the_group(netpair):
    # The transmit socket names its interface by index (IP_MULTICAST_IF with
    # ip_mreqn), so IPv4 multicast leaves even with no route at all.
    def flush(pair, _):
        pair.ip(pair.sender_ns, "route", "flush", "table", "main")
        assert pair.ip(pair.sender_ns, "route", "show").stdout.strip() == ""

    def restore(pair, addresses):
        pair.ip(pair.sender_ns, "route", "add", f"{addresses['ipv4'].rsplit('.', 1)[0]}.0/24", "dev", MACVLAN)

    outage(netpair, "ipv4", flush, restore, expect_failures=False)


def arrivals_after(receiver, since: float, count: int, timeout: float = 20.0) -> list:
    """Wait until ``count`` datagrams arrived after ``since`` (CLOCK_MONOTONIC)
    and return every datagram so far, read while the receiver runs (pread:
    the receiver's file offset, shared with us, must not move)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = os.fstat(receiver.output.fileno()).st_size
        lines = os.pread(receiver.output.fileno(), size, 0).decode().splitlines(keepends=True)
        datagrams = [json.loads(line) for line in lines if line.endswith("\n")]
        if sum(1 for d in datagrams if d["arrival"] > since) >= count:
            return datagrams
        time.sleep(0.01)
    raise TimeoutError(f"fewer than {count} datagrams arrived")


def first_stamp(receiver) -> float:
    """The send timestamp of the first datagram, read while the receiver runs."""
    first = arrivals_after(receiver, 0, 1)[0]
    return first["seconds"] + first["microseconds"] / 1e6


def test_sigstop_skips_slots_and_resumes_on_the_original_grid(netpair):
    receiver = netpair.receiver("ff2e::42", timeout=10)
    interval = 0.2
    sender = netpair.sender("--interval", str(interval), *SANDBOX)
    t0 = first_stamp(receiver)  # datagram 0; the sender's clock is ours (CLOCK_MONOTONIC)
    arrivals_after(receiver, 0, 4)
    sender.send_signal(signal.SIGSTOP)
    # Resume half-way between two slots: a schedule re-anchored at the
    # resumption would then be half an interval off the original grid.
    resume_at = t0 + (math.ceil((time.monotonic() + 10 * interval - t0) / interval) + 0.5) * interval
    time.sleep(resume_at - time.monotonic())
    resumed = time.monotonic()
    sender.send_signal(signal.SIGCONT)
    arrivals_after(receiver, resumed, 4)
    code, _, err, _ = stop(sender)
    assert code == 0, err
    datagrams = received(receiver, sender_done=True)
    assert_contiguous(datagrams)
    skipped = int(err.split("skipped ", 1)[1].split(" slot")[0])
    assert 9 <= skipped <= 12, err
    assert "resuming on the original grid" in err
    assert summary_counts(err)[1] == 0
    for datagram in datagrams:
        position = (datagram["seconds"] + datagram["microseconds"] / 1e6 - t0) / interval
        assert abs(position - round(position)) < 0.25, (position, err)
    after = [d["arrival"] for d in datagrams if d["arrival"] > resumed]
    # The next slot of the grid, half an interval after resuming; then the normal pace: no burst.
    assert after[0] - resumed < interval
    gaps = [b - a for a, b in zip(after, after[1:])]
    assert all(gap > 0.8 * interval for gap in gaps), gaps


def test_unexpected_errors_are_logged_with_context_and_rate_limited():
    log, stream = string_log()
    errors = LoopErrors(log)

    def broken():
        return {}["missing"]

    for _ in range(150):
        try:
            broken()
        except KeyError as exc:
            errors.report("receive", exc)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines  # occurrences 1, 10 and 100, at error priority
    assert lines[0].startswith("<3>receive: KeyError: 'missing' at test_recovery.py:")
    assert "in broken (occurrence 1; the sender carries on)" in lines[0]
    assert "(occurrence 100;" in lines[2]


def test_a_lost_carrier_is_noticed_though_no_send_fails(netpair):
    # The veth's far end goes down: snd0 stays up without a carrier, and its
    # sends still succeed (the datagrams go nowhere), so only the sender's
    # once-a-second look at the flags can tell.
    proc = netpair.sender("--address", "239.255.42.7", "--interval", "0.2", "--count", "40", *SANDBOX)
    log = [started(proc)]
    lost = time.monotonic()
    netpair.ip(netpair.receiver_ns, "link", "set", netpair.RECEIVER_IF, "down")
    log.append(started(proc, f"interface {netpair.SENDER_IF} has no carrier"))
    noticed = time.monotonic() - lost
    netpair.ip(netpair.receiver_ns, "link", "set", netpair.RECEIVER_IF, "up")
    log.append(started(proc, f"interface {netpair.SENDER_IF} is up"))
    code, _, rest, _ = stop(proc)
    err = "".join(log) + rest
    assert code == 0, err
    assert noticed < 2 * WATCH_PERIOD + 0.2, (noticed, err)  # a second and a tick to ride on, with room for a busy machine
    assert summary_counts(rest)[1] == 0 and "send failed" not in err, err


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_lasts_until_the_first_good_send():
    log, stream = string_log()
    clock = FakeClock()
    failures = FailureLog(log, clock)
    failures.failed(OSError(errno.ENETUNREACH, "unreachable"))
    for _ in range(FailureLog.RESUME_AFTER):
        clock.now += 60.0  # --interval 60: one good send a minute
        failures.succeeded()
    assert stream.getvalue().splitlines()[-1] == "<6>sending resumed after 1 failed datagram(s) over 60.0 s"


def test_the_last_line_of_a_flapping_outage_says_how_it_ended():
    log, stream = string_log()
    clock = FakeClock()
    failures = FailureLog(log, clock)
    for _ in range(40):  # far beyond the rate limit's burst, within one period
        failures.failed(OSError(errno.ENETUNREACH, "unreachable"))
        for _ in range(FailureLog.RESUME_AFTER):
            clock.now += 0.1
            failures.succeeded()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("<6>sending resumed"), lines
    assert len(lines) <= BURST + 1, lines  # bounded all the same
    assert all(a.startswith("<4>send failed") and b.startswith("<6>sending resumed")
               for a, b in zip(lines[::2], lines[1::2])), lines


def renumber(pair, family: str) -> tuple:
    """Give the sender's interface a new address of the family (another
    prefix) and remove the one it had; return (old, new)."""
    old = str(getattr(pair, FAMILIES[family]["source"]))
    if family == "ipv6":
        new, length, extra = old.replace("::1", ":7::1"), "64", ("nodad",)
    else:
        new, length, extra = old.rsplit(".", 2)[0] + ".7.1", "24", ()
    pair.ip(pair.sender_ns, "addr", "add", f"{new}/{length}", "dev", pair.SENDER_IF, *extra)
    pair.ip(pair.sender_ns, "addr", "del", f"{old}/{length}", "dev", pair.SENDER_IF)
    return old, new


@pytest.mark.parametrize("family", FAMILIES)
def test_an_automatic_source_renumbered_away_is_exit_69_naming_both(netpair, family):
    sender = netpair.sender("--address", FAMILIES[family]["group"], "--interval", "0.1", *SANDBOX)
    log = started(sender)
    old, new = renumber(netpair, family)
    renumbered = time.monotonic()
    _, err = sender.communicate(timeout=20)
    took = time.monotonic() - renumbered
    err = log + err
    fatal = [line for line in err.splitlines() if " fatal: " in line]
    assert sender.returncode == 69 and len(fatal) == 1, err
    assert f"source address {old} is gone from {netpair.SENDER_IF} and {new} is usable there now" in fatal[0]
    assert f"source address {old} is no longer usable on {netpair.SENDER_IF}" in err
    assert "summary: " in err and "Traceback" not in err, err
    assert took < 2 * WATCH_PERIOD + 1.0, took  # within the look of a second, with room for a busy machine


@pytest.mark.parametrize("family", FAMILIES)
def test_a_bind_address_renumbered_away_is_waited_for_and_named(netpair, family):
    source = str(getattr(netpair, FAMILIES[family]["source"]))
    sender = netpair.sender("--address", FAMILIES[family]["group"], "--bind-address", source, "--interval", "0.1",
                            *SANDBOX)
    log = started(sender)
    renumber(netpair, family)
    log += started(sender, f"source address {source} is no longer usable on {netpair.SENDER_IF}")
    time.sleep(2 * WATCH_PERIOD)  # long enough for a renumbering exit, which must not come
    assert sender.poll() is None, log
    code, _, err, _ = stop(sender)
    assert code == 0 and "fatal" not in err, log + err


class FakeSources:
    """The interface's addresses as a list the test changes (netif.Ipv4Sources' questions)."""

    def __init__(self, *addresses: str) -> None:
        self.now = [ipaddress.ip_address(a) for a in addresses]

    key = staticmethod(lambda address: address)

    def usable(self, name: bytes, key) -> bool:
        return key in self.now

    def addresses(self, name: bytes) -> list:
        return list(self.now)


def test_only_an_automatic_source_is_left_for_one_that_fits():
    log, _ = string_log()
    group = ipaddress.ip_address("ff2e::42")
    for chosen_for in (group, None):  # automatic, then --bind-address
        sources = FakeSources("fe80::1", "fd00::1")
        interface = types.SimpleNamespace(name=b"eth0")  # what SourceWatch asks of InterfaceWatch
        watch = SourceWatch(sources, interface, ipaddress.ip_address("fd00::1"), log, chosen_for)
        sources.now = [ipaddress.ip_address("fe80::1")]  # gone; the link-local one does not fit the group
        assert watch.check() is False
        sources.now.append(ipaddress.ip_address("fd00:7::1"))  # renumbered
        if chosen_for is None:
            assert watch.check() is False
        else:
            with pytest.raises(SourceRenumbered, match="source address fd00::1 is gone from eth0 and fd00:7::1"):
                watch.check()
