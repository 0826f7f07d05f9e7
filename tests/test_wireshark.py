"""The Wireshark dissector against real datagrams: the sender's, captured on
the namespace veth with Debian's tshark as root, field by field against
what the receiver decoded; and hand-made bad ones for the expert info.

tshark runs Lua as root here because Debian's init.lua sets
run_user_scripts_when_superuser; the script is named with -X lua_script:,
as the man page tells operators to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List

from netns import received
from prereq import require, require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DISSECTOR = os.path.join(ROOT, "wireshark", "mping.lua")
FIELDS = ["mping.version", "mping.type", "mping.ttl", "mping.src.family", "mping.src.ipv4", "mping.src.ipv6",
          "mping.src.port", "mping.dst.family", "mping.dst.ipv4", "mping.dst.ipv6", "mping.dst.port",
          "mping.seq_no", "mping.pid", "mping.timestamp.seconds", "mping.timestamp.microseconds",
          "_ws.expert.message"]

# A datagram that is wrong in every way the dissector flags: version 1.0,
# type 'x', and a source address and port that are not the sender's.
BAD_DATAGRAM = """
import ipaddress, socket, sys
from mping_sender import wire
source, target = sys.argv[1], sys.argv[2]
prefix = wire.encode_prefix("2.0", "s", 5, (ipaddress.ip_address("192.0.2.99"), 1234),
                            (ipaddress.ip_address(target), 4321))
data = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix)))
data[0:5] = b"1.0\\0x"
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((source, 5555))
sock.sendto(data, (target, 4321))
"""


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


def dissect(pcap: str) -> List[Dict[str, str]]:
    argv = ["tshark", "-r", pcap, "-X", f"lua_script:{DISSECTOR}", "-Y", "mping", "-T", "fields",
            "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for field in FIELDS:
        argv += ["-e", field]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Lua: Error" not in result.stderr, result.stderr
    return [dict(zip(FIELDS, line.split("\t"))) for line in result.stdout.splitlines()]


def test_dissected_fields_match_what_was_sent(netpair, tmp_path):
    require_tool("tshark")
    require(os.geteuid() == 0, "tshark captures as root")
    pcap = str(tmp_path / "capture.pcapng")
    capture = start_capture(netpair, pcap, 7)
    sent = []
    for group, extra in (("ff2e::42", ["--ttl", "9"]), ("239.255.42.1", ["--mping-version", "2.1", "--port", "4321"])):
        receiver = netpair.receiver(group, count=3)
        sender = netpair.sender("--address", group, "--interval", "0.05", "--count", "3", *extra)
        _, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
        sent += received(receiver)
    bad = netpair.popen(netpair.sender_ns, [sys.executable, "-c", BAD_DATAGRAM, str(netpair.sender4),
                                            str(netpair.receiver4)], env=dict(os.environ, PYTHONPATH=ROOT))
    assert bad.wait(timeout=30) == 0, bad.communicate()
    assert capture.wait(timeout=30) == 0

    rows = dissect(pcap)
    assert len(rows) == 7, rows
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

    experts = rows[6]["_ws.expert.message"].split("|")
    assert rows[6]["mping.version"] == "1.0"
    assert sorted(experts) == sorted([
        "Version is neither 2.0 nor 2.1 (receivers drop it)",
        "Type is neither 's' (sender) nor 'r' (reply)",
        "Source address differs from the IP header's",
        "Source port differs from the UDP header's",
    ]), experts
