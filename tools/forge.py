#!/usr/bin/env python3
"""Forged mping replies, for the hostile-input tests: what anyone on the path
can do, from made-up source addresses (they need not exist anywhere) through
a raw socket, to an IPv4 group. Each mode learns the sender's id and
sequence numbers from its datagrams, and replies with type ``r``:

- default: one reply to the first datagram from each of ``--sources``
  addresses, in bursts of BURST with GAP between them, then exits. (All at
  once, a loaded machine's sender could not read them as fast as they came,
  and the socket buffer dropped some: what those tests count is the
  receiver table's behaviour, not that buffer.) Prints ``sent N`` when done.
- ``--every``: a reply storm. ``--sources`` reflectors answering every
  datagram at once, back to back, until ``--timeout`` seconds pass without
  one. Prints ``answered N datagrams``.
- ``--flood SECONDS``: replies to the newest datagram as fast as this
  machine can send them, each from the next of 65536 addresses (newcomers
  to the sender's table), for that long. Prints ``flooding`` on stderr when
  it starts and ``flooded N`` when done.

Prints ``ready`` on stderr once joined. Run it only inside a network namespace.
"""

from __future__ import annotations

import argparse
import ipaddress
import select
import socket
import struct
import sys
import time

TYPE_OFFSET = 4
BURST = 100  # replies sent back to back
GAP = 0.005  # seconds between bursts
SEQUENCE_OFFSET = 264
IP_MULTICAST_ALL = 49
FLOOD_ADDRESSES = 65536


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


def next_request(sock: socket.socket, timeout=None):
    """The next sender datagram, as a reply (type 'r'); None after ``timeout`` seconds without one."""
    while True:
        if timeout is not None and not select.select([sock], [], [], timeout)[0]:
            return None
        datagram = bytearray(sock.recv(4096))
        if datagram[TYPE_OFFSET:TYPE_OFFSET + 1] == b"s":
            datagram[TYPE_OFFSET] = ord("r")
            return bytes(datagram)


def burst(raw, args, reply: bytes) -> None:
    first = ipaddress.IPv4Address(args.first_source)
    for n in range(args.sources):
        if n and n % BURST == 0:
            time.sleep(GAP)
        raw.sendto(udp_packet(str(first + n), args.group, args.port, reply), (args.group, 0))
    sequence = struct.unpack_from(">I", reply, SEQUENCE_OFFSET)[0]
    print(f"sent {args.sources} replies to seq={sequence}", file=sys.stderr, flush=True)


def storm(sock, raw, args) -> None:
    """Every datagram answered by every source at once; the packets' headers are built once."""
    first = ipaddress.IPv4Address(args.first_source)
    heads = [udp_packet(str(first + n), args.group, args.port, b"") for n in range(args.sources)]
    answered = 0
    while True:
        reply = next_request(sock, args.timeout)
        if reply is None:
            break
        for head in heads:
            packet = bytearray(head + reply)
            struct.pack_into("!H", packet, 2, len(packet))  # IPv4 total length
            struct.pack_into("!H", packet, 24, 8 + len(reply))  # UDP length
            raw.sendto(packet, (args.group, 0))
        answered += 1
    print(f"answered {answered} datagrams", flush=True)


def flood(sock, raw, args) -> None:
    """The newest datagram answered from ever new addresses, as fast as possible."""
    first = int(ipaddress.IPv4Address(args.first_source))
    reply = next_request(sock)
    sock.setblocking(False)
    print("flooding", file=sys.stderr, flush=True)
    sent = 0
    until = time.monotonic() + args.flood
    while time.monotonic() < until:
        try:
            reply = next_request(sock)
        except BlockingIOError:
            pass
        for _ in range(256):
            source = socket.inet_ntoa((first + sent % FLOOD_ADDRESSES).to_bytes(4, "big"))
            try:
                raw.sendto(udp_packet(source, args.group, args.port, reply), (args.group, 0))
                sent += 1
            except OSError:  # ENOBUFS: the veth's queue is full
                pass
    print(f"flooded {sent}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interface", required=True)
    p.add_argument("--group", required=True, help="an IPv4 group")
    p.add_argument("--port", type=int, default=4321)
    p.add_argument("--sources", type=int, default=400, help="how many made-up source addresses")
    p.add_argument("--first-source", default="10.201.0.1")
    p.add_argument("--every", action="store_true", help="answer every datagram from every source (a reply storm)")
    p.add_argument("--timeout", type=float, default=3.0, help="--every: stop after this many seconds without one")
    p.add_argument("--flood", type=float, default=0.0, metavar="SECONDS", help="flood from new addresses this long")
    args = p.parse_args()
    ifindex = socket.if_nametoindex(args.interface)
    sock = listen(args.group, args.port, ifindex)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", bytes(4), bytes(4), ifindex))
    # Not looped back: the replies are for the sender, not for this namespace's sockets (ours included).
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    print("ready", file=sys.stderr, flush=True)
    if args.every:
        storm(sock, raw, args)
    elif args.flood:
        flood(sock, raw, args)
    else:
        burst(raw, args, next_request(sock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
