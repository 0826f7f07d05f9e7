#!/usr/bin/env python3
"""``make demo``: the sender at work without touching the real network.

Builds a throwaway pair of network namespaces joined by a veth, runs
mping-sender in one and a receiver and a reflector in the other for each
address family, prints every decoded datagram as it arrives (the sender's and
the reflector's replies) and the sender's reply summary, then deletes everything.
"""

from __future__ import annotations

import os
import sys

from netns import NetnsPair

COUNT = int(os.environ.get("COUNT", "5"))


def main() -> int:
    if os.geteuid() != 0:
        print("make demo: needs root for network namespaces (sudo make demo)", file=sys.stderr)
        return 77
    pair = NetnsPair()
    try:
        for group in ("ff2e::42", "239.255.42.1"):
            print(f"--- {COUNT} datagrams to {group}, one per second, "
                  f"{pair.sender_ns}/{pair.SENDER_IF} -> {pair.receiver_ns}/{pair.RECEIVER_IF}", flush=True)
            receiver = pair.receiver(group, count=2 * COUNT, as_json=False, stdout=None)
            pair.reflector(group, "--timeout", "3")
            sender = pair.sender("--address", group, "--count", str(COUNT), stderr=None)
            if sender.wait() != 0 or receiver.wait(timeout=10) != 0:
                return 1
    finally:
        pair.close()
    print("--- done: namespaces deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
