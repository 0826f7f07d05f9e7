"""Classic BPF socket filters (SO_ATTACH_FILTER): the opcodes, one
instruction, and attaching a program. The programs themselves live with the
sockets they guard. A socket filter on a UDP socket sees the UDP header at
offset 0; it runs before the datagram is queued, and what it drops costs no
wake-up (the kernel counts it among the socket's drops)."""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
# Opcodes (linux/filter.h): class | size | mode, or class | op | source.
LD, JMP, RET = 0x00, 0x05, 0x06
W, B = 0x00, 0x10
ABS, LEN = 0x20, 0x80
JEQ, JGE = 0x10, 0x30
K = 0x00
ACCEPT, DROP = 0xFFFFFFFF, 0  # return values: bytes of the datagram to keep


def op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    """One struct sock_filter."""
    return struct.pack("HBBI", code, jt, jf, k)


DROP_ALL = op(RET | K, DROP)


def attach(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER with a struct sock_fprog pointing at program; the
    kernel copies the program, so the buffer may go once the call returns."""
    code = ctypes.create_string_buffer(program, len(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("@HP", len(program) // 8, ctypes.addressof(code)))
