"""Stalled outputs, the whole program in network namespaces. The log: stderr
a pipe that nobody reads (``… --log-level trace 2>&1 | sleep 45``); every
datagram leaves, SIGTERM stops it at once, and once the reader is back the
dropped lines are reported. The statistics: the exit never hangs."""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time

from mping_sender.stats_file import STATS_STALL
from netns import received, stop
from test_end_to_end import assert_contiguous, summary_counts
from test_hostile import one_fatal_line
from test_log import F_SETPIPE_SZ, FILLED

INTERVAL = 0.002


def start_stalled(pair):
    """The sender at --log-level trace (a line per datagram) with its stderr
    and stdout one pipe that nobody reads (``2>&1 | sleep 45``), shrunk to
    a page so that it fills at once; a receiver on the far side. Returns
    (sender, receiver, the pipe's read end)."""
    receiver = pair.receiver("ff2e::42", timeout=10)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    try:
        sender = pair.sender("--interval", str(INTERVAL), "--log-level", "trace", "--sandbox", "require",
                             stdout=write_end, stderr=write_end, text=False)
    finally:
        os.close(write_end)
    return sender, receiver, read_end


STALLED = 1500  # datagrams, as many trace lines: more than the pipe and the backlog hold


def wait_received(receiver, count: int, timeout: float = 20.0) -> None:
    """Wait until the receiver has written ``count`` datagrams (pread: its
    file offset, shared with us, must not move)."""
    deadline = time.monotonic() + timeout
    while os.pread(receiver.output.fileno(), 1 << 20, 0).count(b"\n") < count:
        assert time.monotonic() < deadline, f"fewer than {count} datagrams in {timeout} s"
        time.sleep(0.05)


def sent_throughout(datagrams) -> None:
    """Every datagram arrived, in sequence, with no pause: a sender that
    waited for its log stopped once the pipe filled. (The grid's exact slots
    are not asserted: at 2 ms a busy machine makes the sender skip a few.)"""
    assert_contiguous(datagrams)
    assert len(datagrams) >= STALLED, len(datagrams)
    stamps = [d["seconds"] + d["microseconds"] / 1e6 for d in datagrams]
    assert max(b - a for a, b in zip(stamps, stamps[1:])) < 0.25


def test_a_stalled_log_stream_delays_no_datagram_and_no_stop(netpair):
    sender, receiver, read_end = start_stalled(netpair)
    try:
        wait_received(receiver, STALLED)  # the pipe is full after some 50 lines, the backlog after some 900
        assert sender.poll() is None
        code, _, _, took = stop(sender, timeout=10)
        assert code == 0 and took < 1.0, (code, took)
    finally:
        os.close(read_end)
    sent_throughout(received(receiver, sender_done=True))


def test_once_the_stream_drains_the_drops_are_reported_and_the_summary_written(netpair):
    sender, receiver, read_end = start_stalled(netpair)
    out = bytearray()

    def read_to_the_end() -> None:
        for chunk in iter(lambda: os.read(read_end, 65536), b""):
            out.extend(chunk)

    reader = threading.Thread(target=read_to_the_end, daemon=True)
    try:
        wait_received(receiver, STALLED)
        reader.start()  # the reader is back, and reads to the end
        deadline = time.monotonic() + 5
        while b"log lines dropped" not in out and time.monotonic() < deadline:
            time.sleep(0.01)
        code, _, _, took = stop(sender, timeout=10)
        reader.join(5)
    finally:
        os.close(read_end)
    text = out.decode()
    assert code == 0 and took < 1.0, (code, took, text[-500:])
    notice = re.search(r" warning: (\d+) log lines dropped: the log stream was blocked for ([\d.]+) s\n", text)
    assert notice and int(notice[1]) > 0 and float(notice[2]) >= STALLED * INTERVAL / 2, text[-2000:]
    sent = [int(n) for n in re.findall(r" trace: sent seq=(\d+) ", text)]
    assert sent == sorted(sent) and sent[0] == 0  # whole lines, in order: the start, a gap, the rest
    sent_count = summary_counts(text)[0]
    assert sent_count >= len(sent)
    datagrams = received(receiver, sender_done=True)
    assert len(datagrams) == sent_count
    sent_throughout(datagrams)


def test_stats_json_to_a_reader_that_takes_nothing_is_given_up_and_the_exit_never_hangs(netpair):
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, F_SETPIPE_SZ, FILLED)
        os.write(write_end, b"#" * FILLED)  # full: what the sender writes, nobody reads
        proc = netpair.sender("--count", "2", "--interval", "0.01", "--stats-json", "-", stdout=write_end)
        os.close(write_end)
        write_end = -1
        started = time.monotonic()
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(read_end)
    line = one_fatal_line(err, 69, proc)
    assert f"--stats-json: standard output took nothing for {STATS_STALL:g} s; the statistics are lost" in line
    assert "summary: 2 sent" in err and took < STATS_STALL + 5
