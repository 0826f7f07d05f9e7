"""The mping datagram: pure encoding and decoding, no I/O.

The layout is the in-memory image of the reference C struct on 64-bit Linux
(see shared/protocol/mping-protocol.md): a 288-byte header of version, type,
TTL, two ``sockaddr_storage`` blocks, then big-endian sequence, id, seconds and
microseconds, followed by an optional zero payload.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import namedtuple

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Tuple, Union
    IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
    Endpoint = Tuple[IPAddress, int]

HEADER_SIZE = 288
MAX_PAYLOAD_SIZE = 1760
VERSIONS = ("2.0", "2.1")
TYPE_SENDER = "s"
TYPE_REPLY = "r"
SEQUENCE_MODULUS = 2**32


_SOCKADDR_STORAGE_SIZE = 128
_AF_INET = 2  # Linux values, written little-endian as in the C struct
_AF_INET6 = 10
_PREFIX = struct.Struct("4scc2x128s128s")
_COUNTERS = struct.Struct(">IIQQ")
_COUNTERS_OFFSET = _PREFIX.size
TYPE_OFFSET = 4  # where the type byte and the id are, for the reply socket's kernel filter
ID_OFFSET = _COUNTERS_OFFSET + 4


class DecodeError(ValueError):
    """The bytes are not an mping datagram."""


class Datagram(namedtuple("Datagram", "version type ttl source destination sequence id seconds "
                                     "microseconds payload_size", defaults=(0,))):
    """The fields of one mping datagram: version and type (str), ttl (int),
    source and destination (Endpoint), sequence, id, seconds, microseconds
    and payload_size (int)."""

    __slots__ = ()


def encode_sockaddr(endpoint: Endpoint) -> bytes:
    """Serialise an address and port as a zero-filled Linux sockaddr_storage."""
    address, port = endpoint
    if address.version == 4:
        head = struct.pack("<H", _AF_INET) + struct.pack(">H", port) + address.packed
    else:
        head = struct.pack("<H", _AF_INET6) + struct.pack(">HI", port, 0) + address.packed
    return head.ljust(_SOCKADDR_STORAGE_SIZE, b"\0")


def decode_sockaddr(raw: bytes) -> Endpoint:
    """Parse a sockaddr_storage written by encode_sockaddr (or a C sender)."""
    (family,) = struct.unpack_from("<H", raw, 0)
    (port,) = struct.unpack_from(">H", raw, 2)
    if family == _AF_INET:
        return ipaddress.IPv4Address(raw[4:8]), port
    if family == _AF_INET6:
        return ipaddress.IPv6Address(raw[8:24]), port
    raise DecodeError(f"unknown address family {family}")


def encode_prefix(version: str, kind: str, ttl: int, source: Endpoint, destination: Endpoint) -> bytes:
    """The first 264 bytes, which stay the same for every datagram of a run."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}")
    if kind not in (TYPE_SENDER, TYPE_REPLY):
        raise ValueError("type must be 's' or 'r'")
    if not 0 <= ttl <= 255:
        raise ValueError("ttl must be 0..255")
    return _PREFIX.pack(
        version.encode("ascii"),
        kind.encode("ascii"),
        bytes((ttl,)),
        encode_sockaddr(source),
        encode_sockaddr(destination),
    )


def write_counters(buffer: bytearray, sequence: int, ident: int, seconds: int, microseconds: int) -> None:
    """Overwrite the counters of an encoded datagram in place (the hot path)."""
    _COUNTERS.pack_into(buffer, _COUNTERS_OFFSET, sequence % SEQUENCE_MODULUS, ident, seconds, microseconds)


def encode(datagram: Datagram) -> bytes:
    """Serialise a whole datagram, payload zeros included."""
    if datagram.payload_size < 0 or datagram.payload_size > MAX_PAYLOAD_SIZE:
        raise ValueError(f"payload size must be 0..{MAX_PAYLOAD_SIZE}")
    prefix = encode_prefix(datagram.version, datagram.type, datagram.ttl, datagram.source, datagram.destination)
    buffer = bytearray(prefix + bytes(HEADER_SIZE - len(prefix) + datagram.payload_size))
    write_counters(buffer, datagram.sequence, datagram.id, datagram.seconds, datagram.microseconds)
    return bytes(buffer)


def decode(raw: bytes) -> Datagram:
    """Parse and validate a datagram; raise DecodeError for anything else."""
    if len(raw) < HEADER_SIZE:
        raise DecodeError(f"short datagram: {len(raw)} bytes, need {HEADER_SIZE}")
    version_raw, kind_raw, ttl_raw, source_raw, destination_raw = _PREFIX.unpack_from(raw, 0)
    version = version_raw.rstrip(b"\0").decode("ascii", "replace")
    if version_raw[3:] != b"\0" or version not in VERSIONS:
        raise DecodeError(f"unknown version {version_raw!r}")
    kind = kind_raw.decode("ascii", "replace")
    if kind not in (TYPE_SENDER, TYPE_REPLY):
        raise DecodeError(f"unknown type {kind_raw!r}")
    sequence, ident, seconds, microseconds = _COUNTERS.unpack_from(raw, _COUNTERS_OFFSET)
    return Datagram(
        version=version,
        type=kind,
        ttl=ttl_raw[0],
        source=decode_sockaddr(source_raw),
        destination=decode_sockaddr(destination_raw),
        sequence=sequence,
        id=ident,
        seconds=seconds,
        microseconds=microseconds,
        payload_size=len(raw) - HEADER_SIZE,
    )


def stamp(buffer: bytearray, sequence: int, ident: int, monotonic_ns: int) -> None:
    """write_counters with the time as CLOCK_MONOTONIC nanoseconds: seconds and
    microseconds, truncated. The send path's one call per datagram."""
    seconds, rest = divmod(monotonic_ns, 1_000_000_000)
    _COUNTERS.pack_into(buffer, _COUNTERS_OFFSET, sequence % SEQUENCE_MODULUS, ident, seconds, rest // 1000)
