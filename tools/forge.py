#!/usr/bin/env python3
"""Forged mping replies, for the hostile-input tests: what anyone on the path
can do. Reads one sender datagram from an IPv4 group to learn its id and
sequence number, then sends one reply (type ``r``) from each of ``--sources``
made-up source addresses through a raw socket (the addresses need not exist
anywhere), as fast as it can in bursts of BURST with GAP between them, and
exits. (All at once, a loaded machine's sender could not read them as fast
as they came, and the socket buffer, 208 KiB unless net.core.rmem_max is
raised, dropped a third of them: what the tests count is the receiver
table's behaviour, not that buffer.) Prints ``ready`` on stderr once
joined and ``sent N`` when done. Run it only inside a network namespace.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
import sys
import time

TYPE_OFFSET = 4
BURST = 100  # replies sent back to back
GAP = 0.005  # seconds between bursts
SEQUENCE_OFFSET = 264
IP_MULTICAST_ALL = 49


def listen(group: str, port: int, ifindex: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
    sock.bind(("0.0.0.0", port))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    struct.pack("4s4si", socket.inet_aton(group), bytes(4), ifindex))
    return sock


def udp_packet(source: str, group: str, port: int, payload: bytes) -> bytes:
    """IPv4 header (the kernel fills in the checksum) + UDP header (no checksum) + payload."""
    length = 20 + 8 + len(payload)
    ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, socket.IPPROTO_UDP, 0,
                            socket.inet_aton(source), socket.inet_aton(group))
    return ip_header + struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--interface", required=True)
    p.add_argument("--group", required=True, help="an IPv4 group")
    p.add_argument("--port", type=int, default=4321)
    p.add_argument("--sources", type=int, default=400, help="how many made-up source addresses")
    p.add_argument("--first-source", default="10.201.0.1")
    args = p.parse_args()
    ifindex = socket.if_nametoindex(args.interface)
    sock = listen(args.group, args.port, ifindex)
    print("ready", file=sys.stderr, flush=True)
    while True:
        datagram = bytearray(sock.recv(4096))
        if datagram[TYPE_OFFSET:TYPE_OFFSET + 1] == b"s":
            break
    datagram[TYPE_OFFSET] = ord("r")
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", bytes(4), bytes(4), ifindex))
    first = ipaddress.IPv4Address(args.first_source)
    for n in range(args.sources):
        if n and n % BURST == 0:
            time.sleep(GAP)
        raw.sendto(udp_packet(str(first + n), args.group, args.port, bytes(datagram)), (args.group, 0))
    sequence = struct.unpack_from(">I", datagram, SEQUENCE_OFFSET)[0]
    print(f"sent {args.sources} replies to seq={sequence}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
