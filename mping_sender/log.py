"""Logging to stderr, with a real ``trace`` level and journal priorities,
that never blocks the sender.

Under systemd (JOURNAL_STREAM names our stderr) lines carry a ``<N>`` syslog
priority prefix instead of a timestamp, so journald records the right level.

Our own few lines rather than the standard ``logging`` package, which
brings threading, traceback, string, weakref and more (about 1 MiB of peak
RSS and several milliseconds of start-up) for one stream handler.
"""

from __future__ import annotations

import math
import os
import select
import sys
import time

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Dict, Optional, Protocol, TextIO

    class Output(Protocol):
        def write(self, data: bytes) -> int: ...

TRACE, DEBUG, INFO, WARNING, ERROR, CRITICAL = 5, 10, 20, 30, 40, 50

LEVELS: Dict[str, int] = {
    "trace": TRACE,
    "debug": DEBUG,
    "info": INFO,
    "warning": WARNING,
    "error": ERROR,
    "fatal": CRITICAL,
}

_SYSLOG_PRIORITY = {TRACE: 7, DEBUG: 7, INFO: 6, WARNING: 4, ERROR: 3, CRITICAL: 2}
_LEVEL_NAME = {number: name for name, number in LEVELS.items()}


def iso_time(created: float) -> str:
    """ISO 8601 local time with its UTC offset (2026-11-25T11:40:40.433+01:00):
    unambiguous across time zones and daylight-saving changes. What
    datetime's isoformat(timespec="milliseconds") writes, without importing
    datetime (memory at every start)."""
    fraction, seconds = math.modf(created)
    seconds, micros = divmod(int(seconds) * 1_000_000 + round(fraction * 1e6), 1_000_000)  # as datetime rounds
    local = time.localtime(seconds)
    sign = "-" if local.tm_gmtoff < 0 else "+"
    offset_minutes, offset_seconds = divmod(abs(local.tm_gmtoff), 60)
    offset = f"{sign}{offset_minutes // 60:02d}:{offset_minutes % 60:02d}"
    if offset_seconds:
        offset += f":{offset_seconds:02d}"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{micros // 1000:03d}{offset}"


BACKLOG_LIMIT = 64 * 1024  # bytes of lines kept while the stream takes nothing; later lines are dropped
FINAL_DRAIN = 0.5  # seconds the last lines (the stop's summary) may wait at exit for a stream that takes nothing

# Control characters as \xNN: a message carries text from the command line
# and the network, and a newline in it would start a line of its own (under
# the journal, with a forged <N> priority); escape sequences would drive the
# terminal.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def escape(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1) as ``\\xNN``: one line, inert."""
    return text.translate(_ESCAPES)


class Descriptor:
    """A file descriptor (stderr; the --stats-json stream) written only as
    far as it takes data at once.

    Not by making it non-blocking: O_NONBLOCK belongs to the open file
    description, which stderr shares with others (the terminal and the shell
    that started us, standard output under ``2>&1``, where --stats-json -
    writes; a log pipe shared with other processes), and it would stay set
    after a SIGKILL. Instead a write is tried only when select() says the
    descriptor is writable, and then with at most PIPE_BUF bytes: a pipe
    that select() calls writable has a free page, which takes PIPE_BUF bytes
    without waiting; the journal's stream socket has three quarters of its
    send buffer free; a regular file is always writable (a slow disk delays
    it as any write). A terminal is writable while it has some room: a
    stopped one (^S) is not, a line longer than the room left can wait for
    it. A descriptor that is non-blocking anyway (set by someone else) says
    EAGAIN instead: the same as not writable. select() is allowed under the
    sandbox (the loop waits with it) and needs nothing set before it."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        """Write what the descriptor takes now without waiting; return how
        many bytes (0: none). OSError when it fails otherwise (EPIPE, ENOSPC, EBADF)."""
        if not select.select([], [self.fd], [], 0)[1]:
            return 0
        try:
            return os.write(self.fd, data[:select.PIPE_BUF])
        except BlockingIOError:
            return 0

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the descriptor to become writable (or
        broken: True, and the next write says how)."""
        try:
            return bool(select.select([], [self.fd], [], max(seconds, 0))[1])
        except OSError:
            return True


class Logger:
    """Lines at ``level`` and above to ``out``: ``<N>message`` for the
    journal, ``time level: message`` elsewhere. The same calls as
    logging.Logger, so that modules read as they always did.

    A line never waits for the stream. What it does not take at once waits
    in a backlog of BACKLOG_LIMIT bytes, written first by the next line and
    by flush() (the loop calls it once a second); lines beyond the limit are
    dropped and counted, and once the backlog is written a line says how
    many and for how long the stream took nothing."""

    __slots__ = ("level", "journal", "_out", "_encoding", "_backlog", "_dropped", "_blocked_since")

    def __init__(self, out: Optional[Output], level: int = WARNING, journal: bool = False,
                 encoding: str = "utf-8") -> None:
        self.level = level
        self._out = out
        self.journal = journal
        self._encoding = encoding
        self._backlog = bytearray()
        self._dropped = 0  # lines dropped since the stream stopped taking them
        self._blocked_since: Optional[float] = None  # monotonic time the backlog began

    def isEnabledFor(self, level: int) -> bool:
        return level >= self.level

    def log(self, level: int, msg: str, *args: object) -> None:
        """Format (only if the line is wanted) and write one line. A bug in
        the call still gives a line. Without a stream (stderr was closed
        when Python started) there is nothing to write to."""
        if level < self.level or self._out is None:
            return
        if args:
            try:
                msg = msg % args
            except Exception as exc:  # noqa: BLE001 - a bad format or a failing __str__: still a line
                msg = f"{msg} (unformatted: {type(exc).__name__} with {len(args)} argument(s))"
        self.write(self._line(level, escape(msg)))

    def _line(self, level: int, msg: str) -> str:
        if self.journal:
            return f"<{_SYSLOG_PRIORITY.get(level, 6)}>{msg}\n"
        return f"{iso_time(time.time())} {_LEVEL_NAME.get(level) or f'level {level}'}: {msg}\n"

    def write(self, line: str) -> None:
        """Write one whole line (formatted, escaped), after the backlog: now,
        or later from the backlog, or not at all beyond its limit. A write
        that fails (stderr closed, a full disk, a reader gone) drops it: it
        could not be reported anyway, and the sender must go on."""
        if self._out is None:
            return
        data = line.encode(self._encoding, "backslashreplace")
        if self._backlog:
            self.flush()
        if not self._backlog:
            try:
                written = self._out.write(data)
            except OSError:
                return
            if written == len(data):
                return
            data = data[written:]
            if self._blocked_since is None:
                self._blocked_since = time.monotonic()
        elif len(self._backlog) + len(data) > BACKLOG_LIMIT:
            self._dropped += 1
            return
        self._backlog += data  # the rest of a line begun is always kept: never half a line

    def flush(self) -> None:
        """Write as much of the backlog as the stream takes now. Once it is
        all written, say how many lines were dropped, if any."""
        while self._backlog:
            try:
                written = self._out.write(self._backlog)
            except OSError:  # the stream is broken: nothing of it can be written, or reported
                self._backlog.clear()
                self._dropped, self._blocked_since = 0, None
                return
            if not written:
                return
            del self._backlog[:written]
        if self._blocked_since is None:
            return
        dropped, blocked = self._dropped, time.monotonic() - self._blocked_since
        self._dropped, self._blocked_since = 0, None
        if dropped:
            self.write(self._line(WARNING, f"{dropped} log lines dropped: the log stream was blocked "
                                           f"for {blocked:.1f} s"))

    def drain(self, seconds: float = FINAL_DRAIN) -> None:
        """At exit: give the backlog (the stop's summary) up to ``seconds``
        to be written; what the stream has not taken by then is lost."""
        deadline = time.monotonic() + seconds
        while self._backlog and self._out.wait(deadline - time.monotonic()):
            self.flush()

    def debug(self, msg: str, *args: object) -> None:
        self.log(DEBUG, msg, *args)

    def info(self, msg: str, *args: object) -> None:
        self.log(INFO, msg, *args)

    def warning(self, msg: str, *args: object) -> None:
        self.log(WARNING, msg, *args)

    def error(self, msg: str, *args: object) -> None:
        self.log(ERROR, msg, *args)

    def critical(self, msg: str, *args: object) -> None:
        self.log(CRITICAL, msg, *args)


def stderr_is_journal(stream: Optional[TextIO], journal_stream: Optional[str]) -> bool:
    """True when JOURNAL_STREAM ("dev:inode") names the stream's file."""
    if not journal_stream or stream is None:
        return False
    try:
        st = os.fstat(stream.fileno())
        device, inode = (int(part) for part in journal_stream.split(":"))
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def print_error(message: str, stream: Optional[TextIO] = sys.stderr) -> None:
    """One error line before logging is set up (a bad command line): with
    the journal's err priority under systemd, as a plain line elsewhere;
    none with stderr closed. It waits for the stream FINAL_DRAIN seconds at
    most, as the last lines of a run do."""
    logger = setup("fatal", stream)
    prefix = f"<{_SYSLOG_PRIORITY[ERROR]}>" if logger.journal else ""
    logger.write(f"{prefix}{escape(message)}\n")
    logger.drain()


def setup(level: str, stream: Optional[TextIO] = sys.stderr) -> Logger:
    """The program's logger, once, before anything is logged: it writes to
    the stream's descriptor, in the stream's encoding."""
    if stream is None:
        return Logger(None, LEVELS[level])
    journal = stderr_is_journal(stream, os.environ.get("JOURNAL_STREAM"))
    return Logger(Descriptor(stream.fileno()), LEVELS[level], journal, stream.encoding or "utf-8")
