"""The Wireshark dissector against real datagrams: the sender's, captured on
the namespace veth with Debian's tshark as root, field by field against
what the receiver decoded; hand-made bad ones for the expert info; and
display filters with each of our names and each of the original C++
mping-sender dissector's, which saved filters still use. Debian 12's
tshark is Wireshark 4.0, the oldest the dissector supports.

tshark runs Lua as root here because Debian's init.lua sets
run_user_scripts_when_superuser; the script is named with -X lua_script:,
as the man page tells operators to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List

import pytest

from helpers import ROOT, program_env
from netns import NetnsPair, received
from prereq import require_root, require_tool

DISSECTOR = os.path.join(ROOT, "wireshark", "mping.lua")
FIELDS = ["mping.version", "mping.type", "mping.ttl", "mping.src.family", "mping.src.ipv4", "mping.src.ipv6",
          "mping.src.port", "mping.dst.family", "mping.dst.ipv4", "mping.dst.ipv6", "mping.dst.port",
          "mping.seq_no", "mping.pid", "mping.timestamp.seconds", "mping.timestamp.microseconds",
          "_ws.expert.message"]

# Datagrams that are wrong in each way the dissector flags, sent from
# SOURCE:5555 to TARGET:4321: version 1.0, type 'x' and a source that is not
# the sender's; both address families unknown; a destination that is not
# where it was sent.
BAD_DATAGRAMS = """
import ipaddress, socket, sys
from mping_sender import wire
source, target = (ipaddress.ip_address(arg) for arg in sys.argv[1:3])
def datagram(src, dst):
    prefix = wire.encode_prefix("2.0", "s", 5, src, dst)
    return bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix)))
wrong_source = datagram((ipaddress.ip_address("192.0.2.99"), 1234), (target, 4321))
wrong_source[0:5] = b"1.0\\0x"
no_family = datagram((source, 5555), (target, 4321))
no_family[8:10] = no_family[136:138] = (7).to_bytes(2, "little")
wrong_destination = datagram((source, 5555), (ipaddress.ip_address("239.1.1.1"), 9999))
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((str(source), 5555))
for data in (wrong_source, no_family, wrong_destination):
    sock.sendto(data, (str(target), 4321))
sock.close()
"""
GOOD6, GOOD4, WRONG_SOURCE, NO_FAMILY, WRONG_DESTINATION = range(5)
KINDS = [GOOD6] * 3 + [GOOD4] * 3 + [WRONG_SOURCE, NO_FAMILY, WRONG_DESTINATION]  # in capture order

# Each expert info and field filter, ours and the original dissector's
# (which must keep working), with the kinds of datagram it must match.
FILTERS = {
    "mping.version.unknown": {WRONG_SOURCE}, "mping.depracated_version": {WRONG_SOURCE},
    "mping.type.invalid": {WRONG_SOURCE}, "mping.invalid_type": {WRONG_SOURCE},
    "mping.src.address_mismatch": {WRONG_SOURCE}, "mping.src.mismatch_addr": {WRONG_SOURCE},
    "mping.src.port_mismatch": {WRONG_SOURCE}, "mping.src.mismatch_port": {WRONG_SOURCE},
    "mping.family.invalid": {NO_FAMILY}, "mping.src.invalid_family": {NO_FAMILY},
    "mping.dst.invalid_family": {NO_FAMILY},
    "mping.dst.address_mismatch": {WRONG_DESTINATION}, "mping.dst.mismatch_addr": {WRONG_DESTINATION},
    "mping.dst.port_mismatch": {WRONG_DESTINATION}, "mping.dst.mismatch_port": {WRONG_DESTINATION},
    "mping.dst.family == 10": {GOOD6}, "mping.dst.type == 10": {GOOD6},
    "mping.dst.family == 2": {GOOD4, WRONG_SOURCE, WRONG_DESTINATION},
    "mping.dst.type == 2": {GOOD4, WRONG_SOURCE, WRONG_DESTINATION},
}


def start_capture(netpair, pcap: str, count: int) -> subprocess.Popen:
    """tshark on the sender's veth, ending by itself after count UDP datagrams
    (a signal could end it before the last ones are written)."""
    capture = netpair.popen(netpair.sender_ns, ["tshark", "-i", netpair.SENDER_IF, "-f", "udp", "-c", str(count),
                                                "-w", pcap])
    assert capture.stderr is not None
    seen = []
    for line in capture.stderr:
        seen.append(line)
        if line.startswith("Capturing on"):
            return capture
    raise AssertionError("tshark did not start: " + "".join(seen))


def tshark(pcap: str, *args: str) -> str:
    result = subprocess.run(["tshark", "-r", pcap, "-X", f"lua_script:{DISSECTOR}", *args], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Lua: Error" not in result.stderr, result.stderr
    return result.stdout


def dissect(pcap: str) -> List[Dict[str, str]]:
    argv = ["-Y", "mping", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for field in FIELDS:
        argv += ["-e", field]
    return [dict(zip(FIELDS, line.split("\t"))) for line in tshark(pcap, *argv).splitlines()]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A real capture on the namespace veth: three datagrams to an IPv6 group
    (TTL 9), three to an IPv4 group (version 2.1), then the three bad ones;
    with what the receivers decoded of the good ones."""
    require_tool("tshark")
    require_root()
    pair = NetnsPair()
    try:
        pcap = str(tmp_path_factory.mktemp("wireshark") / "capture.pcapng")
        capture = start_capture(pair, pcap, 9)
        sent = []
        for group, extra in (("ff2e::42", ["--ttl", "9"]), ("239.255.42.1", ["--mping-version", "2.1"])):
            receiver = pair.receiver(group, count=3)
            sender = pair.sender("--address", group, "--interval", "0.05", "--count", "3", *extra)
            _, err = sender.communicate(timeout=30)
            assert sender.returncode == 0, err
            sent += received(receiver)
        bad = pair.popen(pair.sender_ns, [sys.executable, "-c", BAD_DATAGRAMS, str(pair.sender4),
                                          str(pair.receiver4)], env=program_env())
        assert bad.wait(timeout=30) == 0, bad.communicate()
        assert capture.wait(timeout=30) == 0
        yield pcap, sent
    finally:
        pair.close()


def test_dissected_fields_match_what_was_sent(capture):
    pcap, sent = capture
    rows = dissect(pcap)
    assert len(rows) == 9, rows
    for row, datagram in zip(rows, sent):
        v6 = ":" in datagram["source"]
        family = "10" if v6 else "2"
        assert row["mping.version"] == datagram["version"]
        assert row["mping.type"] == "'s'"
        assert int(row["mping.ttl"]) == datagram["ttl"]
        assert (row["mping.src.family"], row["mping.dst.family"]) == (family, family)
        assert row["mping.src.ipv6" if v6 else "mping.src.ipv4"] == datagram["source"]
        assert row["mping.dst.ipv6" if v6 else "mping.dst.ipv4"] == datagram["destination"]
        assert row["mping.src.ipv4" if v6 else "mping.src.ipv6"] == ""
        assert (int(row["mping.src.port"]), int(row["mping.dst.port"])) == (datagram["source_port"],
                                                                           datagram["destination_port"])
        assert int(row["mping.seq_no"]) == datagram["sequence"]
        assert int(row["mping.pid"], 0) == datagram["id"]
        assert int(row["mping.timestamp.seconds"]) == datagram["seconds"]
        assert int(row["mping.timestamp.microseconds"]) == datagram["microseconds"]
        assert row["_ws.expert.message"] == "", row
    assert [row["mping.ttl"] for row in rows[:6]] == ["9"] * 3 + ["64"] * 3
    assert rows[6]["mping.version"] == "1.0"


def test_expert_infos_under_our_names_and_the_originals(capture):
    pcap, _ = capture
    rows = dissect(pcap)

    def experts(row: Dict[str, str]) -> List[str]:
        return sorted(row["_ws.expert.message"].split("|"))

    old = " [{}: the original dissector's name]"
    assert experts(rows[6]) == sorted([
        "Version is neither 2.0 nor 2.1 (receivers drop it)",
        "Version is neither 2.0 nor 2.1 (receivers drop it)" + old.format("mping.depracated_version"),
        "Type is neither 's' (sender) nor 'r' (reply)",
        "Type is neither 's' (sender) nor 'r' (reply)" + old.format("mping.invalid_type"),
        "Source address differs from the IP header's",
        "Source address differs from the IP header's" + old.format("mping.src.mismatch_addr"),
        "Source port differs from the UDP header's",
        "Source port differs from the UDP header's" + old.format("mping.src.mismatch_port"),
    ])
    family = "Address family is neither AF_INET nor AF_INET6"
    assert experts(rows[7]) == sorted([family, family + old.format("mping.src.invalid_family"),
                                       family, family + old.format("mping.dst.invalid_family")])
    assert experts(rows[8]) == sorted([
        "Destination address differs from the IP header's",
        "Destination address differs from the IP header's" + old.format("mping.dst.mismatch_addr"),
        "Destination port differs from the UDP header's",
        "Destination port differs from the UDP header's" + old.format("mping.dst.mismatch_port"),
    ])


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_display_filters_old_and_new_names(capture, name):
    pcap, _ = capture
    frames = tshark(pcap, "-Y", name, "-T", "fields", "-e", "frame.number").split()
    assert [int(frame) for frame in frames] == [number for number, kind in enumerate(KINDS, 1)
                                                if kind in FILTERS[name]]
