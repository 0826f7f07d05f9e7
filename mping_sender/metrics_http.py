"""The metrics endpoint (--metrics-listen): GET /metrics over HTTP, served
in the event loop, never blocking and never in a datagram's way.

The listening socket is made, bound and set up before the sandbox; after
it the only descriptors made are the connections accept4 returns,
non-blocking and close-on-exec from the start (no socket option can be set
any more). At most MAX_CONNECTIONS are open: while they are, the listening
socket is not watched and newcomers wait in its backlog. A request must be
complete within REQUEST_TIMEOUT and REQUEST_LIMIT bytes, and the whole
exchange end within CONNECTION_LIFETIME (a client that never reads), or the
connection is closed. The document is made a piece at a time while the next
datagram is far enough (eventloop.WRITE_MARGIN), and written as the socket
takes it; its end is the connection's close. One document serves every
scrape that comes while it is made and for RENDER_GAP after: a flood of
scrapes costs writes, not the making of a document each.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time

from mping_sender import libc, wire
from mping_sender.eventloop import WRITE_MARGIN
from mping_sender.errors import HostError, os_error_text
from mping_sender.log import WARNING
from mping_sender.ratelimit import LogLimit

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterator, List, Optional, Tuple

    from mping_sender.eventloop import EventLoop
    from mping_sender.log import Logger

MAX_CONNECTIONS = 4
REQUEST_LIMIT = 8192  # bytes: the request line and the headers
REQUEST_TIMEOUT = 2_000_000_000  # ns from accept to the request's end
CONNECTION_LIFETIME = 10_000_000_000  # ns from accept to the response's end (Prometheus' default scrape timeout)
EXPIRY_PERIOD = 0.5  # seconds between looks for connections past their time
RENDER_GAP = 250_000_000  # ns a finished document keeps serving new scrapes (its values are that old at most)
WRITE_CHUNK = 4096  # bytes of the document made at a time, and written at most at once
READ_SIZE = 4096
PATH = b"/metrics"

# The answers to what is not GET /metrics: (status line, extra headers, body).
BAD_REQUEST = (b"400 Bad Request", b"", b"bad request\n")
NOT_FOUND = (b"404 Not Found", b"", b"not found: the metrics are at /metrics\n")
NOT_ALLOWED = (b"405 Method Not Allowed", b"Allow: GET\r\n", b"method not allowed: only GET\n")


def listen(address: wire.IPAddress, port: int) -> socket.socket:
    """The listening socket, non-blocking, bound before the sandbox. An IPv6
    address is IPv6 only (no IPv4-mapped clients behind it); SO_REUSEADDR
    lets a restarted sender bind while the old connections linger."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as err:
        raise HostError(f"--metrics-listen: cannot open a TCP socket: {os_error_text(err)}") from None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(address), port))
        sock.listen(MAX_CONNECTIONS)
    except OSError as err:
        sock.close()
        where = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
        raise HostError(f"--metrics-listen: cannot listen on {where}: {os_error_text(err)}") from None
    return sock


def parse_request(request: bytes) -> Optional[Tuple[bytes, bytes, bytes]]:
    """The answer to a complete request (status line, extra headers, body),
    or None for GET /metrics."""
    line = request.split(b"\n", 1)[0].rstrip(b"\r")
    words = line.split(b" ")
    if len(words) != 3 or not words[2].startswith(b"HTTP/1.") or not words[0].isalpha():
        return BAD_REQUEST
    method, target = words[0], words[1]
    if target.split(b"?", 1)[0] != PATH:
        return NOT_FOUND
    if method != b"GET":
        return NOT_ALLOWED
    return None


def _response(answer: Tuple[bytes, bytes, bytes]) -> bytes:
    status, headers, body = answer
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n" + headers
            + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


class Document:
    """One response to GET /metrics, shared: the parts made so far (the
    status line and headers first), and the pieces still to make."""

    __slots__ = ("parts", "pieces", "finished")

    def __init__(self, header: bytes, pieces: Iterator[str]) -> None:
        self.parts: List[bytes] = [header]
        self.pieces: Optional[Iterator[str]] = pieces  # None once all is made
        self.finished = 0  # when it was all made (monotonic ns)

    def make(self, due: float) -> None:
        """Make the next part, about WRITE_CHUNK bytes, stopping early when the next datagram is near."""
        made = []
        size = 0
        assert self.pieces is not None
        for piece in self.pieces:
            made.append(piece)
            size += len(piece)
            if size >= WRITE_CHUNK or time.monotonic_ns() + WRITE_MARGIN >= due:
                break
        else:
            self.pieces = None
            self.finished = time.monotonic_ns()
        self.parts.append("".join(made).encode())


class Connection:
    """One client: what it sent so far, then what is left to send it."""

    __slots__ = ("fd", "deadline", "request", "pending", "document", "part", "writing")

    def __init__(self, fd: int, now: int) -> None:
        self.fd = fd
        self.deadline = now + REQUEST_TIMEOUT
        self.request = b""
        self.pending = memoryview(b"")  # taken from the response, not written yet
        self.document: Optional[Document] = None  # the response to GET /metrics
        self.part = 0  # the document's next part to write
        self.writing = False  # the request is complete: the loop watches for room to write, not for data

    def fileno(self) -> int:
        return self.fd


class Endpoint:
    """The listening socket and its connections, in the loop. ``exposition``
    makes the metrics afresh, in pieces (metrics.exposition)."""

    def __init__(self, sock: socket.socket, exposition: Callable[[], Iterator[str]], log: Logger,
                 content_type: str) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._exposition = exposition
        self._header = (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type.encode()
                        + b"\r\nConnection: close\r\n\r\n")
        self._connections: Dict[int, Connection] = {}
        self._latest: Optional[Document] = None  # the one new scrapes join, while it is recent
        self._loop: Optional[EventLoop] = None
        self._listening = False
        self._errors = LogLimit(log, "metrics endpoint errors")

    def fileno(self) -> int:
        return self._fd

    def attach(self, loop: EventLoop) -> None:
        self._loop = loop
        loop.add_timer(EXPIRY_PERIOD, self.expire, tolerance=EXPIRY_PERIOD)
        self._listen(True)

    def _listen(self, on: bool) -> None:
        """Watch the listening socket, or leave newcomers in its backlog."""
        if on != self._listening:
            if on:
                self._loop.add_reader(self, self._accept)
            else:
                self._loop.remove_reader(self._fd)
            self._listening = on

    def close(self) -> None:
        for fd in list(self._connections):
            self._close(fd)
        self._sock.close()

    def _accept(self) -> None:
        """Take the waiting connections, up to MAX_CONNECTIONS open."""
        while len(self._connections) < MAX_CONNECTIONS:
            fd = libc.accept4(self._fd, None, None, socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            if fd == -1:
                code = ctypes.get_errno()
                if code in (errno.EAGAIN, errno.EINTR):
                    return
                if code != errno.ECONNABORTED:  # out of descriptors or memory, refused by a sandbox
                    self._errors.log(WARNING, "metrics endpoint: cannot accept a connection: %s",
                                     os_error_text(OSError(code, os.strerror(code))))
                    self._listen(False)  # until a connection ends or the next look: no busy loop
                    return
                continue
            connection = self._connections[fd] = Connection(fd, time.monotonic_ns())
            self._loop.add_reader(connection, lambda fd=fd: self._read(fd))
        self._listen(False)

    def _read(self, fd: int) -> None:
        """More of the request; once it is complete, the answer."""
        connection = self._connections[fd]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._close(fd)
            return
        if not data:  # the client went away before its request ended
            self._close(fd)
            return
        connection.request += data
        end = connection.request.find(b"\r\n\r\n")
        if end == -1:
            end = connection.request.find(b"\n\n")
        if end == -1:
            if len(connection.request) > REQUEST_LIMIT:
                self._close(fd)
            return
        if end > REQUEST_LIMIT:
            self._close(fd)
            return
        answer = parse_request(connection.request)
        connection.request = b""
        connection.deadline += CONNECTION_LIFETIME - REQUEST_TIMEOUT
        self._loop.remove_reader(fd)
        connection.writing = True
        if answer is None:
            connection.document = self._current()
        else:
            connection.pending = memoryview(_response(answer))
        self._loop.add_writer(fd, lambda: self._write(fd))

    def _current(self) -> Document:
        """The document being made, or made less than RENDER_GAP ago; else a new one."""
        latest = self._latest
        if latest is None or (latest.pieces is None and time.monotonic_ns() - latest.finished >= RENDER_GAP):
            latest = self._latest = Document(self._header, self._exposition())
        return latest

    def _write(self, fd: int) -> None:
        """Write what the socket takes, at most WRITE_CHUNK bytes; make the
        document's next part first when this connection wrote all the parts
        made so far (the loop calls only while the next datagram is far)."""
        connection = self._connections[fd]
        document = connection.document
        if not connection.pending:
            if document is None or (document.pieces is None and connection.part == len(document.parts)):
                self._close(fd)
                return
            if connection.part == len(document.parts):
                document.make(self._loop.due)
            connection.pending = memoryview(document.parts[connection.part])
            connection.part += 1
        try:
            written = os.write(fd, connection.pending)
        except BlockingIOError:
            return
        except OSError:  # the client went away: nothing to tell it
            self._close(fd)
            return
        connection.pending = connection.pending[written:]

    def _close(self, fd: int) -> None:
        """Close a connection, reading what the client sent beyond its
        request first (closing with unread data would reset the
        connection, and the client could lose the end of the response)."""
        if self._connections.pop(fd).writing:
            self._loop.remove_writer(fd)
        else:
            self._loop.remove_reader(fd)
        try:
            for _ in range(REQUEST_LIMIT // READ_SIZE):
                if not os.read(fd, READ_SIZE):
                    break
        except OSError:
            pass
        os.close(fd)
        self._listen(True)

    def expire(self, now: float) -> None:
        """Close the connections past their time (the loop's job)."""
        now_ns = time.monotonic_ns()
        for fd in [fd for fd, connection in self._connections.items() if now_ns >= connection.deadline]:
            self._close(fd)
        latest = self._latest
        if latest is not None and (now_ns - latest.finished >= RENDER_GAP if latest.pieces is None else
                                   all(connection.document is not latest for connection in self._connections.values())):
            # Old, or left half made by clients that went away: the next
            # scrape starts afresh, and the memory goes with the last connection writing it.
            self._latest = None
        if len(self._connections) < MAX_CONNECTIONS:
            self._listen(True)

