#!/usr/bin/env python3
"""Capture every frame on one interface, whole (an AF_PACKET socket, no
tcpdump), for the tests that judge what went on the wire
(``tests/helpers.py``: ``capture`` and ``frames``).

Prints ``ready`` on stderr once the socket is bound; on a line (or end of
file) on stdin it takes what is still queued and prints one JSON list of
frames: ``[direction, hex]``, direction being the kernel's packet type
(0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 outgoing).
On ``lo`` every frame is seen twice, outgoing and incoming: only the
incoming copy is kept.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", required=True)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    sock.bind((args.interface, 0))
    sock.setblocking(False)
    loopback = args.interface == "lo"
    frames = []

    def drain() -> None:
        while True:
            try:
                frame, address = sock.recvfrom(65536)
            except BlockingIOError:
                return
            if not (loopback and address[2] == PACKET_OUTGOING):
                frames.append((address[2], frame.hex()))

    print("ready", file=sys.stderr, flush=True)
    while True:
        readable = select.select([sock, sys.stdin], [], [])[0]
        drain()
        if sys.stdin in readable:
            sys.stdin.readline()
            drain()
            json.dump(frames, sys.stdout)
            sys.stdout.write("\n")
            return 0


if __name__ == "__main__":
    sys.exit(main())
