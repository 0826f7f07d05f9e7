#!/usr/bin/env python3
"""An HTTP client for the metrics endpoint's tests, run inside a network
namespace (``ip netns exec``): one request (``get``), or the hostile clients
(``hostile``) one after the other, while the sender keeps sending:

  idle     more connections than the endpoint holds, sending nothing: how
           long until it closes each;
  bad      an oversized request, garbage, another method, another path;
  flood    a client that sends its request and never reads (a tiny receive
           buffer), then as many scrapes as it answers, up to 100 a second;
  after    one more scrape.

Or ``flood`` alone (the bench's): a client that never reads, then scrapes
at up to 100 a second for ``--flood-seconds``, waiting for the endpoint to
listen first. Prints one JSON object with what it saw. Only the standard
library.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from typing import Dict, List, Optional, Tuple

TIMEOUT = 15.0  # seconds any one exchange may take before it counts as unanswered


def connect(host: str, port: int, receive_buffer: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as the end)."""
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def exchange(host: str, port: int, request: bytes) -> Tuple[str, bytes]:
    """(status line, body) of one request; ('', b'') when unanswered."""
    with connect(host, port) as sock:
        sock.sendall(request)
        try:
            response = read_all(sock)
        except socket.timeout:
            return "", b""
    head, _, body = response.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode("latin-1"), body


def request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: sender\r\nAccept: text/plain\r\nConnection: close\r\n\r\n".encode()


def closed_after(sock: socket.socket, started: float) -> Optional[float]:
    """Seconds from started until the server closed the connection (None: it did not, within TIMEOUT)."""
    try:
        read_all(sock)
    except socket.timeout:
        return None
    return round(time.monotonic() - started, 3)


def idle(host: str, port: int, count: int) -> List[Optional[float]]:
    started = time.monotonic()
    socks = [connect(host, port) for _ in range(count)]
    try:
        return [closed_after(sock, started) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def bad(host: str, port: int) -> Dict[str, object]:
    found: Dict[str, object] = {}
    with connect(host, port) as sock:
        started = time.monotonic()
        try:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"x" * 9000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        found["oversized_closed_after"] = closed_after(sock, started)
    found["garbage"] = exchange(host, port, b"\x00\xff\x16\x03\x01 not http at all\r\n\r\n")[0]
    found["post"] = exchange(host, port, request("POST", "/metrics"))[0]
    found["other_path"] = exchange(host, port, request("GET", "/"))[0]
    return found


def flood(host: str, port: int, seconds: float) -> Dict[str, object]:
    slow = connect(host, port, receive_buffer=1024)
    slow.sendall(request("GET", "/metrics"))  # and never read
    answered, unanswered, sizes = 0, 0, set()
    until = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < until:
        status, body = exchange(host, port, request("GET", "/metrics"))
        if status == "HTTP/1.1 200 OK" and body.endswith(b"\n"):
            answered += 1
            sizes.add(len(body) // 1000)
        else:
            unanswered += 1
        next_at += 0.01
        time.sleep(max(0.0, next_at - time.monotonic()))
    slow.close()
    return {"answered": answered, "unanswered": unanswered, "kilobytes": sorted(sizes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("get", "hostile", "flood"))
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path", nargs="?", default="/metrics")
    parser.add_argument("--idle", type=int, default=5, help="idle connections (hostile): one more than the endpoint holds")
    parser.add_argument("--flood-seconds", type=float, default=1.5)
    args = parser.parse_args()
    if args.mode == "get":
        status, body = exchange(args.host, args.port, request("GET", args.path))
        print(status)
        sys.stdout.write(body.decode("utf-8", "replace"))
        return 0 if status else 1
    if args.mode == "flood":
        deadline = time.monotonic() + TIMEOUT
        while True:  # until the sender listens
            try:
                connect(args.host, args.port).close()
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        print(json.dumps(flood(args.host, args.port, args.flood_seconds)))
        return 0
    result: Dict[str, object] = {"idle_closed_after": idle(args.host, args.port, args.idle)}
    result.update(bad(args.host, args.port))
    result.update(flood(args.host, args.port, args.flood_seconds))
    status, body = exchange(args.host, args.port, request("GET", "/metrics"))
    result["after"] = status
    result["after_body"] = body.decode("utf-8", "replace")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
