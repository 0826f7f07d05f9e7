#!/usr/bin/env python3
"""``make demo``: the sender at work without touching the real network.

Builds a throwaway pair of network namespaces joined by a veth, runs
mping-sender in one and a receiver and a reflector in the other for each
address family, prints every line each of them writes, labelled with the
process that wrote it, then deletes everything, however it ends. Needs
root (namespaces) and the ip command; runs without make
(``python3 tools/demo.py``). Where the host cannot give what it needs, one
line says what is missing and where the demo can run instead.

Exit codes: 0 done; 1 a process of the demo failed (its lines are above);
69 the host lacks a part (the ip command, veth, another setup step);
77 no right to make network namespaces (not root, an unprivileged
container, a user namespace); 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import IO, List

from netns import NetnsPair, NetnsUnavailable

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


ELSEWHERE = "run the demo as root on a Linux host or VM, or in a privileged container " \
            "(docker run --privileged, systemd-nspawn)"
# What the host lacks -> (exit code, where to go from there).
MISSING = {
    "rights": (77, "this looks like an unprivileged container or a user namespace: " + ELSEWHERE),
    "veth": (69, "the kernel makes no veth pair (modprobe veth): " + ELSEWHERE),
    "ip": (69, "install it and run the demo again"),
    "setup": (69, ELSEWHERE),
}


def main() -> int:
    if os.geteuid() != 0:
        print("make demo: needs root for network namespaces: run it as root (su -c 'make demo', "
              "or sudo make demo)", file=sys.stderr)
        return 77
    # SIGTERM ends the demo as Ctrl-C does: through the clean-up below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        pair = NetnsPair()
    except NetnsUnavailable as err:
        code, advice = MISSING[err.missing]
        print(f"make demo: {err}; {advice}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
    try:
        print(LEGEND, flush=True)
        lock = threading.Lock()
        for group in ("ff2e::42", "239.255.42.1"):
            if not one_group(pair, group, lock):
                return 1
    except KeyboardInterrupt:
        print("--- interrupted", flush=True)
        return 130
    finally:
        pair.close()
    print("--- done: namespaces deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
