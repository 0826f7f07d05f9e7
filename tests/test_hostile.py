"""Hostile input and faults (issue 11): what an attacker on the path or a
careless operator can do, each class with a real test (sockets on lo or in
network namespaces, real signals, qdiscs, forged packets)."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket

from mping_sender import sender, transmit, wire
from mping_sender.linkwatch import InterfaceWatch
from mping_sender.signals import SignalPipe

LOG = logging.getLogger("test-hostile")


def loopback_sender(receiver: socket.socket, count: int) -> sender.Sender:
    """A Sender on lo aimed at ``receiver`` (unicast to 127.0.0.1)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    source = ipaddress.ip_address("127.0.0.1")
    target = receiver.getsockname()
    watch = InterfaceWatch(sock, "lo", socket.if_nametoindex("lo"), LOG)
    prefix = wire.encode_prefix("2.0", wire.TYPE_SENDER, 1, (source, sock.getsockname()[1]), (source, target[1]))
    transmitter = transmit.Transmitter(sock, source, target[1], 0)
    return sender.Sender(transmitter, watch, prefix, 1, 0, 0.001, count, LOG)


def run_loop(loop: sender.Sender) -> None:
    signals = SignalPipe([])
    try:
        loop.run(signals)
    finally:
        signal.set_wakeup_fd(-1)


def test_a_raising_sent_hook_never_repeats_a_sequence_number():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        loop = loopback_sender(receiver, 6)
        seen = []

        def raising(sequence: int, sent_ns: int) -> None:
            if sequence in (1, 3):
                raise RuntimeError("hook failed")

        loop.sent_hooks += [raising, lambda sequence, sent_ns: seen.append(sequence)]
        run_loop(loop)
        loop._transmitter.sock.close()
        sequences = [wire.decode(receiver.recv(4096)).sequence for _ in range(6)]
    assert sequences == [0, 1, 2, 3, 4, 5]
    assert seen == [0, 1, 2, 3, 4, 5], "one hook raising must not keep the next from running"
    assert loop.counters.sent == 6 and loop.counters.failed == 0
