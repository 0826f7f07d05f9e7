"""Logging to stderr, with a real ``trace`` level and journal priorities.

Under systemd (JOURNAL_STREAM names our stderr) lines carry a ``<N>`` syslog
priority prefix instead of a timestamp, so journald records the right level.

Our own few lines rather than the standard ``logging`` package, which
brings threading, traceback, string, weakref and more (about 1 MiB of peak
RSS and several milliseconds of start-up, issue 12) for one stream handler.
"""

from __future__ import annotations

import math
import os
import sys
import time

TYPE_CHECKING = False  # typing is for the checker: not imported at run time (start-up cost, issue 12)
if TYPE_CHECKING:
    from typing import Dict, Optional, TextIO

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
    datetime (~0.45 MiB at start-up, issue 12)."""
    fraction, seconds = math.modf(created)
    seconds, micros = divmod(int(seconds) * 1_000_000 + round(fraction * 1e6), 1_000_000)  # as datetime rounds
    local = time.localtime(seconds)
    sign = "-" if local.tm_gmtoff < 0 else "+"
    offset_minutes, offset_seconds = divmod(abs(local.tm_gmtoff), 60)
    offset = f"{sign}{offset_minutes // 60:02d}:{offset_minutes % 60:02d}"
    if offset_seconds:
        offset += f":{offset_seconds:02d}"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{micros // 1000:03d}{offset}"


class Logger:
    """Lines at ``level`` and above to ``stream``: ``<N>message`` for the
    journal, ``time level: message`` elsewhere. The same calls as
    logging.Logger, so that modules read as they always did."""

    __slots__ = ("level", "_stream", "_journal")

    def __init__(self, stream: Optional[TextIO], level: int = WARNING, journal: bool = False) -> None:
        self.level = level
        self._stream = stream
        self._journal = journal

    def isEnabledFor(self, level: int) -> bool:
        return level >= self.level

    def log(self, level: int, msg: str, *args: object) -> None:
        """Format (only if the line is wanted) and write one line. A bug in
        the call still gives a line; a write that fails (stderr closed, a
        full disk, a reader gone) drops it: it could not be reported anyway,
        and the sender must go on. Without a stream (stderr was closed when
        Python started) there is nothing to write to."""
        if level < self.level or self._stream is None:
            return
        if args:
            try:
                msg = msg % args
            except Exception as exc:  # noqa: BLE001 - a bad format or a failing __str__: still a line
                msg = f"{msg} (unformatted: {type(exc).__name__} with {len(args)} argument(s))"
        if self._journal:
            line = f"<{_SYSLOG_PRIORITY.get(level, 6)}>{msg}\n"
        else:
            line = f"{iso_time(time.time())} {_LEVEL_NAME.get(level) or f'level {level}'}: {msg}\n"
        try:
            self._stream.write(line)  # one write per line, at once: lines never interleave
            self._stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            pass

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
    none with stderr closed (print would write it to standard output)."""
    if stream is None:
        return
    journal = stderr_is_journal(stream, os.environ.get("JOURNAL_STREAM"))
    print(f"<{_SYSLOG_PRIORITY[ERROR]}>{message}" if journal else message, file=stream)


def setup(level: str, stream: Optional[TextIO] = sys.stderr) -> Logger:
    """The program's logger, once, before anything is logged."""
    return Logger(stream, LEVELS[level], stderr_is_journal(stream, os.environ.get("JOURNAL_STREAM")))
