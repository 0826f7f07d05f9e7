#!/usr/bin/env python3
"""Join an mping group and print every datagram that arrives, decoded.

Used by the tests (``--json``: one JSON object per line) and by ``make demo``
(a readable line per datagram). Stops after ``--count`` datagrams,
``--timeout`` seconds of silence, or on SIGTERM: the sender is done, so it
takes what is already queued (until the socket is quiet for ``DRAIN_QUIET``
seconds) and exits 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mping_sender import wire  # noqa: E402
from mping_sender.reply_socket import open_group_socket, parse_ancillary  # noqa: E402


def record(raw: bytes, peer, ancillary) -> dict:
    """One received datagram as plain data (an 'error' key when it does not decode)."""
    entry = {"arrival": time.monotonic(), "peer": peer[0].split("%")[0], "peer_port": peer[1],
             "length": len(raw), "hop_limit": parse_ancillary(ancillary)[0]}
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
            f"stamp={entry['seconds']}.{entry['microseconds']:06d}")


DRAIN_QUIET = 0.2  # seconds: datagrams sent before SIGTERM are queued well within it


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--interface", required=True)
    p.add_argument("--group", required=True, type=ipaddress.ip_address)
    p.add_argument("--port", type=int, default=4321)
    p.add_argument("--count", type=int, default=0, help="stop after this many datagrams (0: never)")
    p.add_argument("--timeout", type=float, default=5.0, help="stop after this many seconds of silence")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args()
    sock = open_group_socket(args.group, args.port, socket.if_nametoindex(args.interface))
    stop_read, stop_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(stop_write)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the wakeup byte tells the loop
    print("ready", file=sys.stderr, flush=True)
    received = 0
    wait, waiting_for = args.timeout, [sock, stop_read]
    while args.count == 0 or received < args.count:
        ready = select.select(waiting_for, [], [], wait)[0]
        if not ready:
            break
        if stop_read in ready:
            wait, waiting_for = DRAIN_QUIET, [sock]
            continue
        raw, ancillary, _, peer = sock.recvmsg(65535, 256)
        entry = record(raw, peer, ancillary)
        print(json.dumps(entry) if args.json else text(entry), flush=True)
        received += 1
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
