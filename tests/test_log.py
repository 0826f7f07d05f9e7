"""The log never makes the sender wait: a stream that takes nothing (a pipe
nobody reads, a stalled journal) costs log lines, counted and reported once
it drains, never a datagram, a stop or the exit (the whole program's case:
test_stalled_log.py). And a message is always one line."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from mping_sender import log
from helpers import program, program_env, string_log

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ from Python 3.10 on
LINE = re.compile(r"<6>line (\d+)\n")


FILLED = 4096  # bytes a stalled pipe holds


@contextlib.contextmanager
def stalled_pipe():
    """A pipe of FILLED bytes whose write end (blocking, as stderr is) is
    full: nobody reads it until the test does. Yields (read end, write end)."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, F_SETPIPE_SZ, FILLED)
        os.write(write_end, b"#" * FILLED)
        yield read_end, write_end
    finally:
        os.close(write_end)  # first: a write still blocked on the pipe fails instead of hanging
        os.close(read_end)


def read_all(fd: int) -> bytes:
    """What the pipe holds now."""
    os.set_blocking(fd, False)
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def logged_in_time(logger: log.Logger, lines: int, seconds: float) -> float:
    """Log ``lines`` lines in a thread; fail if that takes over ``seconds``
    (a blocked write); return how long it took."""
    thread = threading.Thread(target=lambda: [logger.info("line %d", n) for n in range(lines)], daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{lines} lines took over {seconds} s: the log waited for the stream"
    return time.monotonic() - started


@contextlib.contextmanager
def stalled_journal_stream():
    """A unix stream socket, as journald gives a service for its stderr,
    whose reader reads nothing: filled until it takes no more. Yields
    (the reader's end, the writing end), as descriptors."""
    ours, journal = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, journal:
        ours.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                ours.send(b"#" * 4096)
        ours.setblocking(True)
        try:
            yield journal.fileno(), ours.fileno()
        finally:
            ours.shutdown(socket.SHUT_RDWR)  # a write still blocked fails instead of hanging


@pytest.mark.parametrize("stalled", [stalled_pipe, stalled_journal_stream], ids=["pipe", "journal"])
def test_a_stream_that_takes_nothing_never_delays_a_line(stalled):
    with stalled() as (_, write_end):
        logger = log.Logger(log.Descriptor(write_end), log.INFO, journal=True)
        assert logged_in_time(logger, 5000, 5.0) < 2.0


def test_the_backlog_is_written_in_order_when_the_stream_drains_and_the_drops_are_counted():
    with stalled_pipe() as (read_end, write_end):
        logger = log.Logger(log.Descriptor(write_end), log.INFO, journal=True)
        logged_in_time(logger, 10000, 5.0)
        time.sleep(0.2)  # the time blocked, as the report will say
        assert read_all(read_end).strip(b"#") == b""  # nothing of ours could be written yet
        out = b""
        deadline = time.monotonic() + 5
        while b"dropped" not in out and time.monotonic() < deadline:
            logger.flush()  # what the loop does once a second
            out += read_all(read_end)
        logger.info("after")
        out += read_all(read_end)
    text = out.decode()
    kept = [int(n) for n in LINE.findall(text)]
    assert kept == list(range(len(kept)))  # the first lines, whole, in order
    assert log.BACKLOG_LIMIT - 20 <= len("".join(f"<6>line {n}\n" for n in kept)) <= log.BACKLOG_LIMIT
    notice = re.search(r"<4>(\d+) log lines dropped: the log stream was blocked for ([\d.]+) s\n<6>after\n$", text)
    assert notice, text[-300:]
    assert int(notice[1]) == 10000 - len(kept) and float(notice[2]) >= 0.2
    assert text.count("\n") == len(kept) + 2


def test_the_last_lines_wait_for_the_stream_until_the_deadline_only():
    with stalled_pipe() as (read_end, write_end):
        logger = log.Logger(log.Descriptor(write_end), log.INFO, journal=True)
        logger.info("summary")
        started = time.monotonic()
        logger.drain(0.3)
        assert 0.25 <= time.monotonic() - started < 1.0
        reader = threading.Timer(0.2, os.read, (read_end, FILLED))
        reader.start()  # the stream comes back (the filler read, our lines left) while the next drain waits
        logger.info("last")
        logger.drain(5.0)
        reader.join()
        assert read_all(read_end) == b"<6>summary\n<6>last\n"


def test_a_line_longer_than_a_pipe_s_atomic_write_is_written_whole():
    read_end, write_end = os.pipe()
    try:
        logger = log.Logger(log.Descriptor(write_end), log.INFO, journal=True)
        logger.info("%s", "x" * 10000)
        logger.drain(1.0)
        assert read_all(read_end) == b"<6>" + b"x" * 10000 + b"\n"
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("text, shown", [
    ("--x\n<0>EMERGENCY", "--x\\x0a<0>EMERGENCY"),
    ("a\rb\tc\x00d\x1b[2Je\x7ff\x9bg", "a\\x0db\\x09c\\x00d\\x1b[2Je\\x7ff\\x9bg"),
    ("snd0 \u00e9t\u00e9 \u2026", "snd0 \u00e9t\u00e9 \u2026"),  # printable text as it is
])
def test_control_characters_in_a_message_are_escaped(text, shown):
    """A newline must not start a line of its own: under the journal its
    <N> would be a priority of the attacker's choosing."""
    logger, stream = string_log()
    logger.error("unknown option '%s'", text)
    logger.warning(text)
    assert stream.getvalue() == f"<3>unknown option '{shown}'\n<4>{shown}\n"


def test_a_usage_error_reaches_the_journal_as_one_line(tmp_path):
    with open(tmp_path / "stderr", "w+") as stderr:
        st = os.fstat(stderr.fileno())
        result = subprocess.run(program("--interface-name=x", "--x\n<0>EMERGENCY"), stderr=stderr, timeout=30,
                                env=program_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
        stderr.seek(0)
        assert (result.returncode, stderr.read()) == (64, "<3>mping-sender: unknown option '--x\\x0a<0>EMERGENCY'\n")


def test_a_usage_error_with_stderr_a_broken_pipe_still_exits_64():
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(program("--interface-name=x", "--ttl=999"), stderr=write_end, timeout=30,
                                env=program_env(), stdout=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert (result.returncode, result.stdout) == (64, b"")
