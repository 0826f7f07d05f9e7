#!/usr/bin/env python3
"""``make demo``: the sender at work without touching the real network.

Builds a throwaway pair of network namespaces joined by a veth, runs
mping-sender in one and a receiver and a reflector in the other for each
address family, prints every line each of them writes, labelled with the
process that wrote it, then deletes everything. Needs root (namespaces).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import IO, List

from netns import NetnsPair

COUNT = int(os.environ.get("COUNT", "5"))

LEGEND = """\
Each line starts with the process that printed it:
  sender    mping-sender's log (time, level, message). "new receiver ...: first reply seq=0
            time=0.25 ms": a reflector answered; there time= is the round-trip time. At the end,
            the summary and ping-style statistics per receiver.
  receiver  tools/receiver.py, a listener on the group in the other namespace: every datagram
            it sees, decoded. type=s is the sender's datagram, type=r a reflector's reply;
            seq the sequence number, id the sender's random id, ttl the TTL written in the
            datagram, src and dst the addresses written in it, stamp the sender's monotonic
            clock when it sent that datagram (seconds; a reply echoes it).
  reflector tools/reflector.py: answers each sender datagram (it prints only errors).
"""


def relay(label: str, stream: IO[str], lock: threading.Lock) -> threading.Thread:
    """Copy a process's output to ours, each line prefixed with its label
    (whole lines under one lock, so the processes' lines never mix)."""
    def copy() -> None:
        for line in stream:
            with lock:
                print(f"{label:<9} | {line}", end="" if line.endswith("\n") else "\n", flush=True)
    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def one_group(pair: NetnsPair, group: str, lock: threading.Lock) -> bool:
    with lock:
        print(f"--- {COUNT} datagrams to {group}, one per second, "
              f"{pair.sender_ns}/{pair.SENDER_IF} -> {pair.receiver_ns}/{pair.RECEIVER_IF}", flush=True)
    receiver = pair.receiver(group, count=2 * COUNT, as_json=False)
    reflector = pair.reflector(group, "--timeout", "3")
    sender = pair.sender("--address", group, "--count", str(COUNT))
    relays: List[threading.Thread] = [relay("sender", sender.stderr, lock), relay("receiver", receiver.stdout, lock),
                                      relay("receiver", receiver.stderr, lock),
                                      relay("reflector", reflector.stderr, lock)]
    ok = sender.wait() == 0 and receiver.wait(timeout=10) == 0
    reflector.terminate()  # done: no need to wait out its silence timeout
    reflector.wait(timeout=10)
    for thread in relays:
        thread.join(timeout=10)
    return ok


def main() -> int:
    if os.geteuid() != 0:
        print("make demo: needs root for network namespaces: run it as root (su -c 'make demo', "
              "or sudo make demo)", file=sys.stderr)
        return 77
    print(LEGEND, flush=True)
    lock = threading.Lock()
    pair = NetnsPair()
    try:
        for group in ("ff2e::42", "239.255.42.1"):
            if not one_group(pair, group, lock):
                return 1
    finally:
        pair.close()
    print("--- done: namespaces deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
