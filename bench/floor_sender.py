#!/usr/bin/env python3
"""The second baseline for `make bench`: the naive loop's datagrams, waited
for the way mping-sender waits (a timerfd on the absolute grid, armed once
with the interval as its period, in a select() over four descriptors: the
timer, a pipe, the transmit socket and a second socket), and nothing else:
no schedule arithmetic, counters, checks, hooks or jobs. The distance from
the naive loop to this one is what the wait itself costs in Python; the
distance from this one to mping-sender is everything mping-sender does on
top of it."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mping_sender import libc, netif, transmit, wire  # noqa: E402


def main() -> int:
    interface, group_text, interval, count = os.fsencode(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    group = ipaddress.ip_address(group_text)
    sock = transmit.open_socket(group, 0, 64)
    ifindex = netif.index(sock, interface)
    source = transmit.attach(sock, group, 4323, ifindex, netif.addresses(interface, group.version), 4323)
    prefix = wire.encode_prefix("2.0", wire.TYPE_SENDER, 64, source, (group, 4323))
    buffer = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix)))
    timer = libc.timerfd_create(libc.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
    pipe, _ = os.pipe()
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    descriptors = [pipe, timer, sock.fileno(), other.fileno()]
    spec = ctypes.create_string_buffer(libc.ITIMERSPEC.size)
    start = time.monotonic_ns() + 1_000_000
    libc.ITIMERSPEC.pack_into(spec, 0, *divmod(round(interval * 1e9), 1_000_000_000),
                              *divmod(start, 1_000_000_000))
    libc.timerfd_settime(timer, libc.TFD_TIMER_ABSTIME, ctypes.addressof(spec), None)
    for sequence in range(count):
        select.select(descriptors, [], [])
        os.read(timer, 8)
        wire.stamp(buffer, sequence, 1, time.monotonic_ns())
        sock.send(buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
