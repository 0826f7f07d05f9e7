#!/usr/bin/env python3
"""The baseline for `make bench`: the same datagrams, scheduled the way the
original mping-sender and the reference sender do it, by sleeping one period
after each send. Every send then starts late by however long the previous
send and the sleep overshoot took, and the error accumulates."""

from __future__ import annotations

import ipaddress
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mping_sender import netif, transmit, wire  # noqa: E402


def main() -> int:
    interface, group_text, interval, count = os.fsencode(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    group = ipaddress.ip_address(group_text)
    sock = transmit.open_socket(group, 0, 64)
    ifindex = netif.index(sock, interface)
    source = transmit.attach(sock, group, 4321, ifindex, netif.addresses(interface, group.version), 4321)
    prefix = wire.encode_prefix("2.0", wire.TYPE_SENDER, 64, source, (group, 4321))
    buffer = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix)))
    for sequence in range(count):
        wire.stamp(buffer, sequence, 1, time.monotonic_ns())
        sock.send(buffer)
        time.sleep(interval)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
