"""The attacker inside the process: the program's real start-up under
``--sandbox require`` in namespaces, then arbitrary code in place of the
send loop, trying every socket option and every other way out; a capture
on the peer, on a second link and on lo checks that every frame is exactly
one the program itself could have sent."""

from __future__ import annotations

import collections
import ipaddress
import json
import struct
import sys
import textwrap

import pytest

from helpers import capture, frames, program_env
from prereq import require_sandbox

GROUPS = {"ipv4": "239.255.42.1", "ipv6": "ff2e::42"}
OTHER_GROUPS = {"ipv4": "239.255.99.9", "ipv6": "ff2e::99"}
PORT = 4321
TTL = 7
SECOND_IF = "snd1"

# Runs as the program: its own start-up (cli.main), with the send loop
# replaced by the attack. Everything the attack needs is computed before
# the sandbox: the start-up runs the real sandbox before the loop.
ATTACK = r"""
import ctypes, errno, json, mmap, os, socket, struct, sys
from mping_sender import cli, sender
from mping_sender.libc import libc
from mping_sender.sandbox import seccomp

P = json.loads(sys.argv[1])
V6 = P["family"] == "ipv6"
FAMILY = socket.AF_INET6 if V6 else socket.AF_INET
other_index = socket.if_nametoindex(P["second_if"])
lo_index = socket.if_nametoindex("lo")
packed = lambda text: socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
target, other_group, source = packed(P["target"]), packed(P["other_group"]), packed(P["source"])
group, other_source = packed(P["group"]), packed(P["other_source"])
MPROTECT = seccomp.resolve("mprotect")
IP_PKTINFO = 8  # Linux; Python lacks the name

def sockaddr(address, port=0):
    if len(address) == 4:
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", port, address)
    return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI16sI", port, 0, address, 0)

def storage(address):
    return sockaddr(address).ljust(128, b"\0")

def rthdr(kind):
    if kind == 0:  # the deprecated source route: segments_left 1, one address
        return struct.pack("BBBB4x16s", 17, 2, 0, 1, target)
    if kind == 2:  # Mobile IPv6: one address (the "home address"), segments_left 1
        return struct.pack("BBBB4x16s", 17, 2, 2, 1, target)
    # segment routing: two segments, the packet goes to segments[segments_left]
    return struct.pack("BBBBBBH16s16s", 17, 4, 4, 1, 1, 0, 0, group, target)

def ipv4_options():
    lsrr = struct.pack("BBB4sB", 0x83, 7, 4, target, 1)  # loose source route, NOP-padded
    ssrr = struct.pack("BBB4sB", 0x89, 7, 4, target, 1)
    two = struct.pack("BBB4s4s", 0x83, 11, 4, target, other_source) + b"\x01"
    record = struct.pack("BBB4xB", 0x07, 7, 4, 1)
    stamp = struct.pack("BBBB4s4x", 0x44, 12, 5, 1, target)  # timestamp with an address in it
    alert = b"\x94\x04\x00\x00"
    return [lsrr, ssrr, two, record, stamp, alert, b"\x01" * 4]

# Plausible values: integers (interface indexes, TTLs, flags), and every
# structure the options take, aimed at another group, interface or address.
values = [struct.pack("i", n) for n in (0, 1, 2, 4, 64, 255, 0xB8, lo_index, other_index, 0x7FFFFFFF, -1)]
values += [b"lo\0", P["second_if"].encode() + b"\0", b"\0" * 64, b"\xff" * 64]
values += [struct.pack("4s4si", other_group, bytes(4), other_index), other_group + bytes(4),
           other_group + other_source + source, other_source, struct.pack("i4s4s", other_index, source, target)]
values += [struct.pack("16sI", other_group, other_index), struct.pack("16sI", target, other_index),
           struct.pack("16sI", source, lo_index)]
values += [struct.pack("I4x", other_index) + storage(other_group),
           struct.pack("I4x", other_index) + storage(other_group) + storage(source),
           struct.pack("I4x", other_index) + storage(group) + storage(other_source),
           struct.pack("I4xII", other_index, 0, 1) + storage(other_group) + storage(target),  # group_filter
           other_group + bytes(4) + struct.pack("II", 0, 1) + target[:4]]  # ip_msfilter
values += [rthdr(0), rthdr(2), rthdr(4)] + ipv4_options()
values += [sockaddr(target, 4321), sockaddr(other_group, 4321)]

LEVELS = [socket.IPPROTO_IPV6, socket.IPPROTO_UDP, socket.SOL_SOCKET, socket.IPPROTO_IP] if V6 else \
         [socket.IPPROTO_IP, socket.IPPROTO_UDP, socket.SOL_SOCKET, socket.IPPROTO_IPV6]
# Every option number of each level (the kernel's go up to about 80; UDP's from 100).
OPTNAMES = {level: list(range(0, 90)) for level in LEVELS}
OPTNAMES[socket.IPPROTO_UDP] = list(range(0, 12)) + list(range(100, 112))

def outcome(action):
    try:
        action()
    except OSError as err:
        return errno.errorcode.get(err.errno, str(err.errno))
    return "ok"

def attack(self):
    transmit = self._transmitter.sock
    reply = [h.__self__._sock for h in self._loop._readers.values() if hasattr(getattr(h, "__self__", None), "_sock")]
    sockets = [("transmit", transmit)] + [("reply", s) for s in reply]

    def send():
        for _, sock in sockets:
            outcome(lambda: sock.send(b"attack"))

    for _ in range(3):
        transmit.send(b"baseline")
    taken = []
    for level in LEVELS:
        for optname in OPTNAMES[level]:
            for name, sock in sockets:
                try:  # put back after the values, so that one option (UDP_CORK) hides no other
                    original = sock.getsockopt(level, optname, 256)
                except OSError:
                    original = None
                for index, value in enumerate(values):
                    if outcome(lambda: sock.setsockopt(level, optname, value)) == "ok":
                        taken.append([name, level, optname, index])
                        send()
                if original is not None:
                    outcome(lambda: sock.setsockopt(level, optname, original))
            send()
    pktinfo = (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("16sI", bytes(16), other_index)) if V6 \
        else (socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", other_index, source, target))
    hops = (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT, struct.pack("i", 255)) if V6 \
        else (socket.IPPROTO_IP, socket.IP_TTL, struct.pack("i", 255))
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    page = mmap.mmap(-1, mmap.PAGESIZE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    others = {
        "sendmsg, pktinfo": outcome(lambda: transmit.sendmsg([b"x"], [pktinfo])),
        "sendmsg, hop limit": outcome(lambda: transmit.sendmsg([b"x"], [hops])),
        "sendmsg, to another address": outcome(lambda: transmit.sendmsg([b"x"], [], 0, (P["target"], 4321))),
        "sendto, another address": outcome(lambda: transmit.sendto(b"x", (P["target"], 4321))),
        "sendto, reply socket": outcome(lambda: reply[0].sendto(b"x", (P["target"], 4321))),
        "write, transmit": outcome(lambda: os.write(transmit.fileno(), b"write")),
        "write, reply": outcome(lambda: os.write(reply[0].fileno(), b"write")),
        "writev, transmit": outcome(lambda: os.writev(transmit.fileno(), [b"writev"])),
        "writev, reply": outcome(lambda: os.writev(reply[0].fileno(), [b"writev"])),
        "mmap rwx": outcome(lambda: mmap.mmap(-1, 4096, prot=rw | mmap.PROT_EXEC)),
        "mprotect +x": errno.errorcode.get(ctypes.get_errno(), "ok") if libc.syscall(
            ctypes.c_long(MPROTECT), ctypes.c_long(address), ctypes.c_long(mmap.PAGESIZE),
            ctypes.c_long(rw | mmap.PROT_EXEC)) == -1 else "ok",
        "open, read": outcome(lambda: open("/etc/passwd", "rb").close()),
        "open, create": outcome(lambda: open("/tmp/mping-attacker", "wb").close()),
        "socket": outcome(lambda: socket.socket(FAMILY, socket.SOCK_DGRAM).close()),
    }
    for _ in range(3):
        outcome(lambda: transmit.send(b"baseline"))
    print(json.dumps({"setsockopt taken": taken, "other ways": others}), flush=True)
    return True

sender.Sender.run = attack
sys.exit(cli.main(sys.argv[2:]))
"""


def second_link(pair) -> dict:
    """A veth pair inside the sender's namespace, up, with addresses: another
    interface the datagrams could be moved to; captured on its far end."""
    net = str(pair.sender4).split(".")[1]
    addresses = {"ipv4": f"10.{net}.1.1", "ipv6": f"fd01:{int(net):x}::1"}
    pair.ip(pair.sender_ns, "link", "add", SECOND_IF, "type", "veth", "peer", "name", f"{SECOND_IF}p")
    pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv4']}/24", "dev", SECOND_IF)
    pair.ip(pair.sender_ns, "addr", "add", f"{addresses['ipv6']}/64", "dev", SECOND_IF, "nodad")
    for name in (SECOND_IF, f"{SECOND_IF}p"):
        pair.ip(pair.sender_ns, "link", "set", name, "up")
    pair.wait_ipv6_ready()
    return addresses


# What the kernel sends by itself on a link: ARP, neighbour discovery and
# router solicitation; and the membership reports of solicited-node groups.
ND_TYPES = range(133, 138)
SOLICITED_NODE = ipaddress.ip_network("ff02::1:ff00:0/104")
EXTENSIONS = {0: "a hop-by-hop header", 43: "a routing header", 44: "a fragment header", 60: "destination options"}
# A membership record the program's own join makes: EXCLUDE mode, no source
# (MODE_IS_EXCLUDE answering a query, CHANGE_TO_EXCLUDE when joining); and
# its leave when it exits and its socket closes (CHANGE_TO_INCLUDE, no source).
OWN_RECORDS = (2, 4)
LEAVE = 3


def records(family: str, message: bytes) -> list:
    """(record type, group, number of sources) of an IGMPv3/MLDv2 report,
    or of an IGMPv2/MLDv1 report or leave (type as the message's)."""
    kind = message[0]
    size = 4 if family == "ipv4" else 16
    if kind in (0x22, 143):  # IGMPv3, MLDv2 reports
        found, offset = [], 8
        for _ in range(struct.unpack("!H", message[6:8])[0]):
            rtype, aux, count = struct.unpack("!BBH", message[offset:offset + 4])
            group = ipaddress.ip_address(message[offset + 4:offset + 4 + size])
            found.append((rtype, group, count))
            offset += 4 + size + count * size + aux * 4
        return found
    start = 4 if family == "ipv4" else 8
    return [(kind, ipaddress.ip_address(message[start:start + size]), 0)]


class Wire:
    """The frames of one capture, judged against the program's own datagram."""

    def __init__(self, family: str, group: str, where: str) -> None:
        self.family = family
        self.group = ipaddress.ip_address(group)
        self.where = where
        self.findings: list = []
        self.datagrams: list = []  # (header signature, payload) of every UDP datagram

    def judge(self, frame: bytes) -> None:
        ethertype = struct.unpack("!H", frame[12:14])[0]
        packet = frame[14:]
        if ethertype == 0x0806:
            return
        if ethertype == 0x0800:
            self._ipv4(packet)
        elif ethertype == 0x86DD:
            self._ipv6(packet)
        else:
            self.findings.append(f"{self.where}: ethertype 0x{ethertype:04x}")

    def _ipv4(self, packet: bytes) -> None:
        ihl = (packet[0] & 0x0F) * 4
        protocol, source, destination = packet[9], packet[12:16], packet[16:20]
        if protocol == 2:
            self._memberships("ipv4", packet[ihl:])
            return
        header = ("ipv4", ihl, packet[1], struct.unpack("!H", packet[6:8])[0] & 0x4000, packet[8], protocol,
                  str(ipaddress.ip_address(source)), str(ipaddress.ip_address(destination)))
        self._datagram(header, packet[ihl:])

    def _ipv6(self, packet: bytes) -> None:
        first = struct.unpack("!I", packet[:4])[0]
        next_header, hop_limit = packet[6], packet[7]
        source, destination = ipaddress.ip_address(packet[8:24]), ipaddress.ip_address(packet[24:40])
        payload = packet[40:]
        if next_header == 0 and payload[0] == 58:  # hop-by-hop (router alert), then ICMPv6: MLD
            self._memberships("ipv6", payload[(payload[1] + 1) * 8:])
            return
        if next_header == 58 and payload[0] in ND_TYPES:
            return
        header = ("ipv6", (first >> 20) & 0xFF, first & 0xFFFFF, next_header, hop_limit, str(source),
                  str(destination))
        self._datagram(header, payload)

    def _memberships(self, family: str, message: bytes) -> None:
        for rtype, group, sources in records(family, message):
            own = group == self.group and rtype in OWN_RECORDS + (LEAVE,) and not sources
            kernel = family == "ipv6" and group in SOLICITED_NODE and rtype in OWN_RECORDS and not sources
            if not (own or kernel):
                self.findings.append(f"{self.where}: membership record type {rtype} for {group} "
                                     f"with {sources} source(s)")

    def _datagram(self, header: tuple, payload: bytes) -> None:
        protocol = header[5] if header[0] == "ipv4" else header[3]
        if protocol != 17:
            kind = EXTENSIONS.get(protocol, f"protocol {protocol}") if header[0] == "ipv6" else f"protocol {protocol}"
            if protocol == 43:
                kind += f" of type {payload[2]}"
            self.findings.append(f"{self.where}: not UDP but {kind}, to {header[-1]}: {header}")
            return
        ports_and_checksum = struct.unpack("!HH2xH", payload[:8])
        self.datagrams.append(((header, ports_and_checksum[:2], ports_and_checksum[2] != 0), payload[8:]))


@pytest.mark.parametrize("family", GROUPS)
def test_a_subverted_process_sends_only_what_the_program_sends(netpair, family):
    require_sandbox()
    second = second_link(netpair)
    source = str(netpair.sender4 if family == "ipv4" else netpair.sender6)
    target = str(netpair.receiver4 if family == "ipv4" else netpair.receiver6)
    captures = {"peer": capture(netpair, netpair.receiver_ns, netpair.RECEIVER_IF),
                "second link": capture(netpair, netpair.sender_ns, f"{SECOND_IF}p"),
                "lo": capture(netpair, netpair.sender_ns, "lo")}
    parameters = {"family": family, "group": GROUPS[family], "other_group": OTHER_GROUPS[family],
                  "target": target, "source": source, "other_source": second[family], "second_if": SECOND_IF}
    argv = ["--interface-name", netpair.SENDER_IF, "--address", GROUPS[family], "--port", str(PORT),
            "--ttl", str(TTL), "--sandbox", "require"]
    proc = netpair.popen(netpair.sender_ns, [sys.executable, "-c", textwrap.dedent(ATTACK),
                                             json.dumps(parameters), *argv], env=program_env())
    out, err = proc.communicate(timeout=60)
    seen = {where: frames(proc) for where, proc in captures.items()}
    assert proc.returncode == 0, err
    assert "sandbox: no_new_privs=on" in err and "seccomp=deny+allow" in err, err
    findings = []
    expected = None
    for where, captured in seen.items():
        wire = Wire(family, GROUPS[family], where)
        for direction, frame in captured:
            if direction != 4:  # what reached this link, not what its own end sent
                wire.judge(frame)
        findings += wire.findings
        if where == "peer":
            baseline = [header for header, payload in wire.datagrams if payload == b"baseline"]
            assert len(baseline) >= 3, wire.datagrams[:10]  # the last three: after the attack, if it changed nothing
            expected = baseline[0]
            findings += [f"{where}: a datagram unlike the program's: {header}, {payload[:16]!r}"
                         for header, payload in wire.datagrams if header != expected]
        else:
            findings += [f"{where}: a datagram: {header}, {payload[:16]!r}" for header, payload in wire.datagrams]
    # The program's own datagram, as it must look: to the group, from the
    # source, with the TTL given, no IP options or extension header, traffic
    # class 0, a UDP checksum.
    if family == "ipv4":
        assert expected[0][:2] == ("ipv4", 20) and expected[0][2] == 0 and expected[0][4] == TTL, expected
        assert expected[0][6:] == (source, GROUPS[family]), expected
    else:
        assert expected[0][:2] == ("ipv6", 0) and expected[0][3:5] == (17, TTL), expected
        assert expected[0][5:] == (source, GROUPS[family]), expected
    assert expected[1][1] == PORT and expected[2], expected
    distinct = collections.Counter(findings)
    assert not distinct, "\n".join(f"{count} x {finding}" for finding, count in distinct.most_common(60)) + \
        f"\n... {len(findings)} in all, {len(distinct)} distinct"
    # The wire first (what matters), then the calls that should have failed.
    report = json.loads(out.splitlines()[-1])
    assert report["setsockopt taken"] == [], report["setsockopt taken"][:20]
    assert report["other ways"] == {
        "sendmsg, pktinfo": "EPERM", "sendmsg, hop limit": "EPERM", "sendmsg, to another address": "EPERM",
        "sendto, another address": "EPERM", "sendto, reply socket": "EPERM",
        "write, transmit": "ok",  # a send to the group, like any other
        "write, reply": "EDESTADDRREQ", "writev, transmit": "EPERM", "writev, reply": "EPERM",
        "mmap rwx": "EPERM", "mprotect +x": "EPERM", "open, read": "EPERM", "open, create": "EPERM",
        "socket": "EPERM"}, report["other ways"]

