#!/usr/bin/env python3
"""A capture for the tests: every UDP datagram to ``--port`` seen on an
interface at the link layer (AF_PACKET), whether any socket would accept it
or not, printed on stdout as one JSON line (``{"destination", "hop_limit"}``)
each. Prints ``ready`` on stderr once capturing, and stops on SIGTERM.
Run it only inside a network namespace.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import socket
import sys

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
PACKET_OUTGOING = 4


def udp_to(data: bytes, ethertype: int, port: int):
    """(destination, hop limit) of a UDP datagram to ``port``, else None
    (IPv6 extension headers are not followed: the tests send none)."""
    if ethertype == ETH_P_IP and len(data) >= 20 and data[9] == socket.IPPROTO_UDP:
        header = (data[0] & 0x0F) * 4
        if int.from_bytes(data[header + 2:header + 4], "big") == port:
            return str(ipaddress.IPv4Address(data[16:20])), data[8]
    if ethertype == ETH_P_IPV6 and len(data) >= 48 and data[6] == socket.IPPROTO_UDP:
        if int.from_bytes(data[42:44], "big") == port:
            return str(ipaddress.IPv6Address(data[24:40])), data[7]
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interface", required=True)
    p.add_argument("--port", type=int, default=4321)
    args = p.parse_args()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sock.bind((args.interface, 0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", file=sys.stderr, flush=True)
    while True:
        data, address = sock.recvfrom(65535)
        if address[2] == PACKET_OUTGOING:
            continue
        found = udp_to(data, address[1], args.port)
        if found is not None:
            print(json.dumps({"destination": found[0], "hop_limit": found[1]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
