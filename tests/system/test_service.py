"""The installed package under a real systemd, as operators run it.

On each release (conftest.py), the .deb built on that release is installed
into a system of that release booted with systemd as PID 1 (systemd-nspawn)
in a network namespace joined by a veth to a namespace with a receiver and
a reflector. The tests run in order, as an operator would go: install,
configure, start, look, break, upgrade, remove, purge. Each prints the
figures it measured (-s shows them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from machine import Machine, messages
from netns import NetnsPair, received
from prereq import require_root, require_tool
from test_metrics_endpoint import prometheus_sees

import rootfs
from helpers import ROOT
from mping_sender import wire

GROUP = "ff2e::42"  # the default group: global scope, so reflectors answer from a global or ULA address
INTERVAL = "0.2"


def repack(deb: Path, version: str, dest: Path, units_in_lib: bool = False) -> Path:
    """The same package under another version: what an upgrade installs.
    With units_in_lib, 1.1.0 as it was released: the units in the /lib alias,
    its only packaging difference (the maintainer scripts are the same)."""
    tree = dest / f"tree-{version}"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(), flags=re.M))
    if units_in_lib:
        (tree / "lib" / "systemd").mkdir(parents=True)
        (tree / "usr/lib/systemd/system").rename(tree / "lib/systemd/system")
        (tree / "usr/lib/systemd").rmdir()
        sums = tree / "DEBIAN" / "md5sums"
        sums.write_text(sums.read_text().replace("  usr/lib/systemd/", "  lib/systemd/"))
    out = dest / f"mping-sender_{version}_all.deb"
    subprocess.run(["dpkg-deb", "-b", "-Zxz", str(tree), str(out)], check=True, capture_output=True)
    return out


def original(dest: Path) -> Path:
    """A stand-in for the original's package, mping-sender 1.0.0-1 (C++):
    its program and man page under the same package name, no unit."""
    tree = dest / "original"
    for name, mode, text in (("usr/bin/mping-sender", 0o755, "#!/bin/sh\nexit 0\n"),
                             ("usr/share/man/man8/mping-sender.8", 0o644, ".TH MPING-SENDER 8\n"),
                             ("DEBIAN/control", 0o644, "Package: mping-sender\nVersion: 1.0.0-1\nArchitecture: amd64\n"
                              "Maintainer: nobody <nobody@example.org>\nDescription: multicast test source\n")):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
        (tree / name).chmod(mode)
    out = dest / "mping-sender_1.0.0-1_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def world(release, deb, tmp_path_factory):
    """(machine, network pair): one boot of the release for the whole scenario."""
    require_root()
    for tool in ("mmdebstrap", "systemd-nspawn", "nsenter", "ip", "dpkg-deb"):
        require_tool(tool)
    scratch = tmp_path_factory.mktemp(f"system-{release}")
    started = time.monotonic()
    root = rootfs.ensure(release)
    print(f"\n{release}: root file system {root} ready in {time.monotonic() - started:.1f} s")
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    packages = scratch / "packages"
    packages.mkdir()
    shutil.copy(deb, packages / "current.deb")
    shutil.copy(repack(deb, version + "+upgrade1", scratch), packages / "upgrade.deb")
    shutil.copy(repack(deb, "1.1.0", scratch, units_in_lib=True), packages / "released.deb")
    shutil.copy(original(scratch), packages / "original.deb")
    shutil.copy(ROOT / "tools" / "receiver.py", packages)
    pair = NetnsPair()
    try:
        machine = Machine(root, pair.sender_ns, pair.tag, {str(packages): "/mnt/packages"}, scratch / "console")
        print(f"{release}: container booted in {machine.boot_seconds:.1f} s")
        try:
            yield machine, pair
        finally:
            machine.close()
    finally:
        pair.close()


CONFIG = f"""INTERFACE_NAME={NetnsPair.SENDER_IF}
ARGS=--interval {INTERVAL} --sandbox require
"""


def test_bpf_and_landlock_are_in_force_inside(world):
    """nspawn filters bpf() and Landlock unless told otherwise, silently."""
    machine, pair = world
    # A unit with an IP filter really drops: systemd's BPF firewall works.
    probe = ("import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
             f"s.sendto(b'x', ('{pair.receiver6}', 9))")
    blocked = machine.run(f'systemd-run --wait --quiet -p IPAddressDeny=any python3 -c "{probe}"', check=False)
    assert blocked.returncode != 0, "IPAddressDeny=any did not block: bpf() is filtered"
    allowed = machine.run(f'systemd-run --wait --quiet python3 -c "{probe}"', check=False)
    assert allowed.returncode == 0, allowed.stderr
    abi = machine.run("python3 -c 'import ctypes; print(ctypes.CDLL(None).syscall(444, None, 0, 1))'").stdout
    assert int(abi) >= 1, "landlock_create_ruleset refused inside the container"


def test_install_over_the_original_configure_start(world):
    machine, _ = world
    machine.run("dpkg -i /mnt/packages/original.deb")
    started = time.monotonic()
    machine.run("dpkg -i /mnt/packages/current.deb")
    print(f"installed over the original's 1.0.0-1 in {time.monotonic() - started:.1f} s")
    assert machine.run("dpkg-query -W -f '${Version} ${Architecture}' mping-sender").stdout.endswith(" all")
    assert machine.show("mping-sender.service", "UnitFileState")["UnitFileState"] == "disabled"
    machine.write("/etc/default/mping-sender", CONFIG)
    started = time.monotonic()
    machine.run("systemctl start mping-sender.service")  # Type=notify: returns at READY=1
    print(f"started (READY=1) in {time.monotonic() - started:.2f} s")
    assert machine.show("mping-sender.service", "ActiveState")["ActiveState"] == "active"


def test_datagrams_arrive_and_replies_from_a_global_address_are_counted(world):
    machine, pair = world
    receiver = pair.receiver(GROUP, count=5)
    # The reflector answers from its ULA address, not a link-local one.
    pair.reflector(GROUP, source=str(pair.receiver6))
    datagrams = [d for d in received(receiver) if d["type"] == wire.TYPE_SENDER]  # not the replies
    assert len(datagrams) >= 3 and datagrams[0]["source"].startswith("fd00:")
    sequences = [d["sequence"] for d in datagrams]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    time.sleep(1.0)  # a few replies' worth of datagrams
    cursor = machine.cursor()
    machine.run(f"kill -USR1 {machine.main_pid('mping-sender.service')}")
    summary = machine.wait_for("the SIGUSR1 summary", lambda: [
        m for m in messages(machine.journal("mping-sender.service", cursor)) if "mping totals" in m or
        "receivers," in m])
    totals = next(m for m in summary if "receivers," in m)
    print(f"replies: {totals}")
    assert re.search(r" 1 receivers, [1-9]\d* replies", totals), summary
    found = "\n".join(messages(machine.journal("mping-sender.service", cursor)))
    assert f"--- {pair.receiver6} mping statistics ---" in found


def test_prometheus_scrapes_the_installed_service(world, tmp_path):
    """METRICS_LISTEN in the settings file; Debian's prometheus, on the
    reflector's side of the link, scrapes the service every second: PromQL
    returns the reflector's replies and RTT, and up is 1."""
    machine, pair = world
    machine.write("/etc/default/mping-sender", CONFIG + f"METRICS_LISTEN=[{pair.sender6}]:9810\n")
    machine.run("systemctl restart mping-sender.service")
    try:
        seen = prometheus_sees(pair, f"[{pair.sender6}]:9810", str(pair.receiver6), tmp_path)
        print(f"prometheus: {seen}")
        assert seen["up"] == "1" and seen["replies"] > 0 and 0 < seen["rtt"] < 0.1, seen
        assert seen["info"]["interface"] == NetnsPair.SENDER_IF, seen
    finally:
        machine.write("/etc/default/mping-sender", CONFIG)
        machine.run("systemctl restart mping-sender.service")


def test_process_has_no_privilege_and_the_whole_sandbox(world):
    machine, _ = world
    pid = machine.main_pid("mping-sender.service")
    status = machine.proc_status(pid)
    for field in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, field
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert int(status["Uid"].split()[0]) != 0
    text = messages(machine.journal("mping-sender.service"))
    sandbox = next(m for m in text if m.startswith("sandbox: "))
    print(sandbox)
    assert re.fullmatch(r"sandbox: no_new_privs=on securebits=locked caps=0 landlock=abi\d+\(\S+\) "
                        r"seccomp=deny\+allow mdwe=(prctl|seccomp)", sandbox), sandbox
    assert "--sandbox require" in machine.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
    # The low real-time priority the unit asks for (the process holds no
    # capability to change it).
    sched = machine.run(f"chrt -p {pid}").stdout
    assert "SCHED_FIFO|SCHED_RESET_ON_FORK" in sched and "priority: 1" in sched, sched


def test_journal_lines_are_identified_as_mping_sender(world):
    machine, _ = world
    entries = [e for e in machine.journal("mping-sender.service") if e.get("_PID") not in (None, "1")]
    ours = [e for e in entries if e.get("_COMM") != "systemd"]
    assert ours and {e.get("SYSLOG_IDENTIFIER") for e in ours} == {"mping-sender"}


def test_status_text_is_refreshed_every_few_seconds(world):
    machine, _ = world
    first = machine.show("mping-sender.service", "StatusText")["StatusText"]
    assert first.startswith("sent ")
    changed = machine.wait_for("a new STATUS=", lambda: (
        machine.show("mping-sender.service", "StatusText")["StatusText"] != first), timeout=8)
    assert changed


def test_live_exposure_is_at_most_one(world):
    machine, _ = world
    out = machine.run("systemd-analyze security --no-pager mping-sender.service").stdout
    level = float(re.search(r"Overall exposure level for mping-sender.service: (\d+\.\d+)", out).group(1))
    print(f"live exposure: {level}")
    assert level <= 1.0, out


def test_watchdog_restarts_a_stopped_process(world):
    machine, _ = world
    pid = machine.main_pid("mping-sender.service")
    watchdog = machine.show("mping-sender.service", "WatchdogUSec")["WatchdogUSec"]
    started = time.monotonic()
    machine.run(f"kill -STOP {pid}")
    new = machine.wait_for("a restarted process", lambda: (
        machine.main_pid("mping-sender.service") not in (0, pid)
        and machine.show("mping-sender.service", "ActiveState")["ActiveState"] == "active"
        and machine.main_pid("mping-sender.service")), timeout=120, period=0.5)
    print(f"watchdog restart after SIGSTOP: {time.monotonic() - started:.1f} s (WatchdogUSec={watchdog})")
    assert new != pid
    result = machine.show("mping-sender.service", "NRestarts")
    assert int(result["NRestarts"]) >= 1


def readdress(machine, pair) -> None:
    """The sender's addresses back on its interface, up (a link that went
    down lost its IPv6 ones; one that left the namespace lost them all)."""
    machine.run(f"ip link set {pair.SENDER_IF} up && ip addr replace {pair.sender4}/24 dev {pair.SENDER_IF} && "
                f"ip addr replace {pair.sender6}/64 dev {pair.SENDER_IF} nodad")
    pair.wait_ipv6_ready()


def test_a_flap_is_survived_in_place(world):
    """Down and up keeps the interface's index and memberships: the same
    process sends again, no restart."""
    machine, pair = world
    unit = "mping-sender.service"
    pid, restarts = machine.main_pid(unit), machine.show(unit, "NRestarts")["NRestarts"]
    cursor = machine.cursor()
    machine.run(f"ip link set {pair.SENDER_IF} down")
    machine.wait_for("the link down to be logged", lambda: any(
        m.endswith(f"interface {pair.SENDER_IF} is down") for m in messages(machine.journal(unit, cursor))))
    readdress(machine, pair)
    receiver = pair.receiver(GROUP, count=3)
    assert len(received(receiver)) == 3
    assert machine.main_pid(unit) == pid and machine.show(unit, "NRestarts")["NRestarts"] == restarts


def test_an_interface_moved_away_and_back_restarts_the_service(world):
    """Back under its index, but without the reply socket's membership, which
    the sandbox allows no setsockopt to restore: exit 69, and the unit restarts."""
    machine, pair = world
    unit = "mping-sender.service"
    pid, restarts = machine.main_pid(unit), int(machine.show(unit, "NRestarts")["NRestarts"])
    cursor = machine.cursor()
    elsewhere = f"{pair.tag}-o"
    subprocess.run(["ip", "netns", "add", elsewhere], check=True)
    try:
        subprocess.run(["ip", "-n", pair.sender_ns, "link", "set", pair.SENDER_IF, "netns", elsewhere], check=True)
        machine.wait_for("the interface to be gone", lambda: any(
            m.endswith(f"interface {pair.SENDER_IF} is gone") for m in messages(machine.journal(unit, cursor))))
        subprocess.run(["ip", "-n", elsewhere, "link", "set", pair.SENDER_IF, "netns", pair.sender_ns], check=True)
        moved = time.monotonic()
    finally:
        subprocess.run(["ip", "netns", "del", elsewhere], check=False)
    readdress(machine, pair)
    new = machine.wait_for("a restarted process", lambda: (
        machine.main_pid(unit) not in (0, pid) and machine.show(unit, "ActiveState")["ActiveState"] == "active"
        and machine.main_pid(unit)), timeout=60, period=0.5)
    print(f"moved away and back: active again after {time.monotonic() - moved:.1f} s")
    text = messages(machine.journal(unit, cursor))
    exits = [m for m in text if "after it left this network namespace" in m]
    assert len(exits) == 1 and "exiting for a restart" in exits[0], text
    assert any("status=69" in m for m in text), text
    assert new != pid and int(machine.show(unit, "NRestarts")["NRestarts"]) == restarts + 1
    receiver = pair.receiver(GROUP, count=3)
    assert len(received(receiver)) == 3


def test_stop_logs_the_summary(world):
    machine, _ = world
    cursor = machine.cursor()
    machine.run("systemctl stop mping-sender.service")
    text = messages(machine.journal("mping-sender.service", cursor))
    assert "received SIGTERM, stopping" in text
    assert any(re.match(r"summary: \d+ sent, 0 failed", m) for m in text), text


def test_usage_error_is_in_the_journal_at_err_and_not_restarted(world):
    machine, _ = world
    machine.write("/etc/default/mping-sender", CONFIG + "ARGS=--ttl 999\n")
    cursor = machine.cursor()
    machine.run("systemctl start mping-sender.service", check=False)
    machine.wait_for("the service to fail", lambda: machine.show(
        "mping-sender.service", "ActiveState")["ActiveState"] == "failed")
    entries = [e for e in machine.journal("mping-sender.service", cursor) if "--ttl" in str(e.get("MESSAGE"))]
    assert entries and entries[0]["PRIORITY"] == "3" and entries[0]["SYSLOG_IDENTIFIER"] == "mping-sender", entries
    shown = machine.show("mping-sender.service", "ExecMainStatus", "NRestarts")
    assert shown["ExecMainStatus"] == "64"
    machine.run("systemctl reset-failed mping-sender.service")
    machine.write("/etc/default/mping-sender", CONFIG)


def test_started_before_the_address_is_usable_it_comes_up_by_itself(world):
    """As at boot: the interface is down, then comes up with its addresses
    in duplicate address detection."""
    machine, pair = world
    address = str(pair.sender6).replace("::1", "::99")
    # /proc/sys is read-only inside the container: set DAD from outside.
    subprocess.run(["ip", "netns", "exec", pair.sender_ns, "sysctl", "-qw",
                    f"net.ipv6.conf.{pair.SENDER_IF}.accept_dad=1"], check=True)
    machine.run(f"ip link set {pair.SENDER_IF} down && ip addr add {address}/64 dev {pair.SENDER_IF}")
    machine.write("/etc/default/mping-sender", CONFIG + f"BIND_ADDRESS={address}\n")
    cursor = machine.cursor()
    machine.run("systemctl start --no-block mping-sender.service")
    machine.wait_for("the wait to be logged", lambda: any(
        "waiting up to" in m for m in messages(machine.journal("mping-sender.service", cursor))))
    machine.run(f"ip link set {pair.SENDER_IF} up")
    machine.wait_for("the service to be active", lambda: machine.show(
        "mping-sender.service", "ActiveState")["ActiveState"] == "active", timeout=60)
    text = messages(machine.journal("mping-sender.service", cursor))
    assert any(f"source [{address}]:4321" in m for m in text), text
    print("boot race: " + " | ".join(m for m in text if "waiting" in m or "ready" in m))
    machine.run("systemctl stop mping-sender.service")
    machine.write("/etc/default/mping-sender", CONFIG)


def test_template_instance_runs_restarts_on_upgrade_and_stops_on_remove(world):
    machine, pair = world
    machine.write("/etc/mping-sender/lab.conf", CONFIG.replace(INTERVAL, "0.5") + "ADDRESS=239.255.42.7\n")
    machine.run("systemctl enable --now mping-sender@lab.service")
    receiver = pair.receiver("239.255.42.7", count=2)
    assert len(received(receiver)) == 2
    before = machine.main_pid("mping-sender@lab.service")
    started = time.monotonic()
    machine.run("dpkg -i /mnt/packages/upgrade.deb")
    print(f"upgrade in {time.monotonic() - started:.1f} s")
    after = machine.main_pid("mping-sender@lab.service")
    assert after not in (0, before), "the instance was not restarted on upgrade"
    assert machine.show("mping-sender@lab.service", "ActiveState")["ActiveState"] == "active"
    machine.run("dpkg -r mping-sender")
    state = machine.show("mping-sender@lab.service", "ActiveState")["ActiveState"]
    assert state in ("inactive", "failed") and machine.run(f"kill -0 {after}", check=False).returncode != 0


def leftovers(machine: Machine):
    """Every file or link named after the program, journals aside."""
    left = machine.run("find / -xdev \\( -path /proc -o -path /sys -o -path /mnt \\) -prune -o "
                       "\\( -name '*mping*' -print \\)").stdout.split()
    return [path for path in left if not path.startswith(("/var/log/journal", "/run/log/journal"))]


def test_purge_leaves_nothing(world):
    machine, _ = world
    machine.run("dpkg -P mping-sender")
    assert leftovers(machine) == []


UNITS = ("mping-sender.service", "mping-sender@lab.service")


def test_upgrade_from_1_1_0_moves_the_units_keeps_them_enabled_and_restarts_them(world):
    """1.1.0 shipped the units in /lib/systemd/system: on upgrade the files
    move to /usr/lib/systemd/system (the same directory through the alias);
    dpkg must not delete them as the old package's, and what was enabled
    stays enabled, pointing at the installed files."""
    machine, _ = world
    machine.run("dpkg -i /mnt/packages/released.deb")
    machine.run("dpkg -S /lib/systemd/system/mping-sender@.service")
    machine.write("/etc/default/mping-sender", CONFIG)
    machine.write("/etc/mping-sender/lab.conf", CONFIG.replace(INTERVAL, "0.5") + "ADDRESS=239.255.42.7\n")
    machine.run("systemctl enable --now " + " ".join(UNITS))
    before = {unit: machine.main_pid(unit) for unit in UNITS}
    started = time.monotonic()
    machine.run("dpkg -i /mnt/packages/upgrade.deb")
    print(f"upgrade from 1.1.0 (units in /lib) in {time.monotonic() - started:.1f} s")
    owned = machine.run("dpkg -L mping-sender").stdout.split()
    assert sorted(p for p in owned if "/systemd/system/" in p) == [
        "/usr/lib/systemd/system/mping-sender.service", "/usr/lib/systemd/system/mping-sender@.service"]
    machine.run("test -f /usr/lib/systemd/system/mping-sender.service")
    machine.run("test -f /usr/lib/systemd/system/mping-sender@.service")
    links = machine.run("find /etc/systemd/system -name 'mping-sender*' -type l").stdout.split()
    assert len(links) == 2, links
    for link in links:
        target = machine.run(f"readlink -e {link}", check=False).stdout.strip()
        assert target in owned, f"{link} -> {target}: not a unit file of the package"
    for unit in UNITS:
        shown = machine.show(unit, "UnitFileState", "ActiveState", "NeedDaemonReload")
        assert shown == {"UnitFileState": "enabled", "ActiveState": "active", "NeedDaemonReload": "no"}, (unit, shown)
        assert machine.main_pid(unit) not in (0, before[unit]), f"{unit} was not restarted on upgrade"
    machine.run("dpkg -r mping-sender")
    for unit in UNITS:
        assert machine.show(unit, "ActiveState")["ActiveState"] in ("inactive", "failed"), unit
    machine.run("dpkg -P mping-sender")
    assert leftovers(machine) == []
