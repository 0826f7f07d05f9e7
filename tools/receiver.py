#!/usr/bin/env python3
"""Join an mping group and print every datagram that arrives, decoded.

Used by the tests (``--json``: one JSON object per line) and by ``make demo``
(a readable line per datagram). Stops after ``--count`` datagrams or
``--timeout`` seconds of silence.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mping_sender import wire  # noqa: E402

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux value; older Pythons lack the name


def open_group_socket(group: wire.IPAddress, port: int, interface: str) -> socket.socket:
    """A socket bound to the group's port and joined to the group on the interface."""
    ifindex = socket.if_nametoindex(interface)
    if group.version == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4si", group.packed, bytes(4), ifindex))
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, struct.pack("16sI", group.packed, ifindex))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    return sock


def hop_limit(ancillary) -> int:
    """The TTL / hop limit the datagram arrived with, from IP_TTL / IPV6_HOPLIMIT."""
    for level, kind, data in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            return struct.unpack("i", data[:4])[0]
    return -1


def record(raw: bytes, peer, ancillary) -> dict:
    """One received datagram as plain data (an 'error' key when it does not decode)."""
    entry = {"arrival": time.monotonic(), "peer": peer[0].split("%")[0], "peer_port": peer[1],
             "length": len(raw), "hop_limit": hop_limit(ancillary)}
    try:
        d = wire.decode(raw)
    except wire.DecodeError as err:
        entry["error"] = str(err)
        return entry
    entry.update(version=d.version, type=d.type, ttl=d.ttl, source=str(d.source[0]), source_port=d.source[1],
                 destination=str(d.destination[0]), destination_port=d.destination[1], sequence=d.sequence,
                 id=d.id, seconds=d.seconds, microseconds=d.microseconds, payload_size=d.payload_size)
    return entry


def text(entry: dict) -> str:
    if "error" in entry:
        return f"{entry['length']} bytes from {entry['peer']}: not mping ({entry['error']})"
    return (f"{entry['length']} bytes from {entry['peer']}: mping {entry['version']} type={entry['type']} "
            f"seq={entry['sequence']} id=0x{entry['id']:08x} ttl={entry['ttl']} "
            f"src=[{entry['source']}]:{entry['source_port']} dst=[{entry['destination']}]:{entry['destination_port']} "
            f"time={entry['seconds']}.{entry['microseconds']:06d}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interface", required=True)
    p.add_argument("--group", required=True, type=ipaddress.ip_address)
    p.add_argument("--port", type=int, default=4321)
    p.add_argument("--count", type=int, default=0, help="stop after this many datagrams (0: never)")
    p.add_argument("--timeout", type=float, default=5.0, help="stop after this many seconds of silence")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args()
    sock = open_group_socket(args.group, args.port, args.interface)
    print("ready", file=sys.stderr, flush=True)
    received = 0
    while args.count == 0 or received < args.count:
        if not select.select([sock], [], [], args.timeout)[0]:
            break
        raw, ancillary, _, peer = sock.recvmsg(65535, 256)
        entry = record(raw, peer, ancillary)
        print(json.dumps(entry) if args.json else text(entry), flush=True)
        received += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
