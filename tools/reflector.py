#!/usr/bin/env python3
"""An mping reflector for the tests, written from the protocol description
alone (it does not use mping_sender.wire, so it checks the sender
independently): every sender datagram (type ``s``) that arrives on the group
is sent back to the same group and port as the same bytes with type ``r`` and
this reflector's own address in ``source``.

Faults on demand, by sequence number (``3,7,10-12,40-``): ``--drop`` never
answers, ``--duplicate`` answers twice, ``--delay SPEC=SECONDS`` answers late.
``--fuzz SECONDS`` instead sends random and mutated datagrams to the group as
fast as it can. Prints ``ready`` on stderr once joined; stops after
``--timeout`` seconds without a sender datagram.
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import os
import random
import select
import socket
import struct
import sys
import time
from typing import Callable, List, Tuple

HEADER = 288
VERSIONS = (b"2.0\0", b"2.1\0")
SEQUENCE_OFFSET = 264
IP_MULTICAST_ALL = 49
IPV6_MULTICAST_ALL = 29


def sequences(spec: str) -> Callable[[int], bool]:
    """A predicate for '3,7,10-12,40-' (an open range runs to the end)."""
    ranges: List[Tuple[int, float]] = []
    for part in filter(None, spec.split(",")):
        low, dash, high = part.partition("-")
        ranges.append((int(low), float(high) if high else float("inf") if dash else int(low)))
    return lambda seq: any(low <= seq <= high for low, high in ranges)


def sockaddr_storage(address, port: int) -> bytes:
    """A Linux sockaddr_storage image: family little-endian, port big-endian."""
    if address.version == 4:
        head = struct.pack("<H", 2) + struct.pack(">H", port) + address.packed
    else:
        head = struct.pack("<H", 10) + struct.pack(">HI", port, 0) + address.packed
    return head + bytes(128 - len(head))


def open_sockets(group, port: int, interface: str, source, ttl: int):
    """A socket joined to the group (receives) and one bound to our own address (replies)."""
    ifindex = socket.if_nametoindex(interface)
    family = socket.AF_INET if group.version == 4 else socket.AF_INET6
    listen = socket.socket(family, socket.SOCK_DGRAM)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reply = socket.socket(family, socket.SOCK_DGRAM)
    reply.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if group.version == 4:
        listen.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        listen.bind(("0.0.0.0", port))
        listen.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                          struct.pack("4s4si", group.packed, bytes(4), ifindex))
        reply.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, struct.pack("4s4si", bytes(4), bytes(4), ifindex))
        reply.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        reply.bind((str(source), port))
        destination = (str(group), port)
    else:
        listen.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
        listen.bind(("::", port))
        listen.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, struct.pack("16sI", group.packed, ifindex))
        reply.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        reply.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        reply.bind((str(source), port))
        destination = (str(group), port, 0, ifindex)
    return listen, reply, destination


def answer(raw: bytes, own_source: bytes) -> bytes:
    """The reply: same bytes, type 'r', our address in source."""
    return raw[:4] + b"r" + raw[5:8] + own_source + raw[136:]


def is_request(raw: bytes) -> bool:
    return len(raw) >= HEADER and raw[:4] in VERSIONS and raw[4:5] == b"s"


def mutations(template: bytes, rng: random.Random) -> bytes:
    """One hostile datagram: random bytes, or a reply with something broken."""
    choice = rng.randrange(8)
    if choice == 0 or not template:
        return rng.randbytes(rng.randrange(0, 3000))
    raw = bytearray(template)
    if choice == 1:
        return bytes(raw[:rng.randrange(len(raw))])  # truncated
    if choice == 2:
        return bytes(raw) + rng.randbytes(rng.randrange(1, 2000))  # oversized
    if choice == 3:
        raw[0:4] = rng.choice([b"1.0\0", b"2.2\0", b"2.0x", rng.randbytes(4)])  # wrong version
    elif choice == 4:
        struct.pack_into(">I", raw, SEQUENCE_OFFSET, rng.randrange(2**32))  # our id, any sequence
    elif choice == 5:
        struct.pack_into(">I", raw, SEQUENCE_OFFSET + 4, rng.randrange(2**32))  # another id
    elif choice == 6:
        raw[8:136] = rng.randbytes(128)  # garbage source address
    else:
        for _ in range(rng.randrange(1, 20)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)  # bit rot
    return bytes(raw)


def fuzz(listen, reply, destination, source, own_source: bytes, seconds: float) -> int:
    """Throw hostile datagrams at the group; learn a real request to mutate."""
    rng = random.Random(int.from_bytes(os.urandom(8), "big"))
    template = b""
    sent = 0
    until = time.monotonic() + seconds
    listen.setblocking(False)
    # Not looped back: the flood is for the sender, not for this namespace's receivers.
    if source.version == 4:
        reply.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    else:
        reply.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
    while time.monotonic() < until:
        try:
            raw, peer = listen.recvfrom(65535)
            if is_request(raw) and ipaddress.ip_address(peer[0].split("%")[0]) != source:
                template = answer(raw, own_source)
        except BlockingIOError:
            pass
        try:
            reply.sendto(mutations(template, rng), destination)
            sent += 1
        except OSError:  # EMSGSIZE for some random sizes, ENOBUFS under load
            pass
    print(f"fuzzed {sent}", flush=True)
    return 0


def reflect(listen, reply, destination, own_source: bytes, args) -> int:
    drop, duplicate = sequences(args.drop), sequences(args.duplicate)
    delays = [(sequences(spec), float(seconds)) for spec, seconds in
              (item.rsplit("=", 1) for item in args.delay)]
    queue: List[Tuple[float, int, bytes]] = []
    answered = 0
    last_request = time.monotonic()
    while True:
        now = time.monotonic()
        if not queue and now - last_request > args.timeout:
            break
        wait = min([last_request + args.timeout] + [due for due, _, _ in queue[:1]]) - now
        if select.select([listen], [], [], max(0.0, wait))[0]:
            raw = listen.recv(65535)
            if is_request(raw):
                last_request = time.monotonic()
                seq = struct.unpack_from(">I", raw, SEQUENCE_OFFSET)[0]
                if not drop(seq):
                    delay = next((seconds for match, seconds in delays if match(seq)), 0.0)
                    copies = 2 if duplicate(seq) else 1
                    for copy in range(copies):
                        heapq.heappush(queue, (last_request + delay, seq * 2 + copy, answer(raw, own_source)))
        while queue and queue[0][0] <= time.monotonic():
            reply.sendto(heapq.heappop(queue)[2], destination)
            answered += 1
    print(f"answered {answered}", flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interface", required=True)
    p.add_argument("--group", required=True, type=ipaddress.ip_address)
    p.add_argument("--source", required=True, type=ipaddress.ip_address, help="our own address (replies come from it)")
    p.add_argument("--port", type=int, default=4321)
    p.add_argument("--ttl", type=int, default=64, help="TTL / hop limit of the replies")
    p.add_argument("--timeout", type=float, default=5.0, help="stop after this many seconds without a request")
    p.add_argument("--drop", default="", help="sequence numbers not to answer")
    p.add_argument("--duplicate", default="", help="sequence numbers to answer twice")
    p.add_argument("--delay", action="append", default=[], metavar="SPEC=SECONDS",
                   help="answer these sequence numbers that many seconds late")
    p.add_argument("--fuzz", type=float, default=0.0, metavar="SECONDS", help="send hostile datagrams instead")
    args = p.parse_args()
    listen, reply, destination = open_sockets(args.group, args.port, args.interface, args.source, args.ttl)
    own_source = sockaddr_storage(args.source, args.port)
    print("ready", file=sys.stderr, flush=True)
    if args.fuzz:
        return fuzz(listen, reply, destination, args.source, own_source, args.fuzz)
    return reflect(listen, reply, destination, own_source, args)


if __name__ == "__main__":
    sys.exit(main())
