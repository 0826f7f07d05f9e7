"""The wire format against shared/protocol/vectors.txt, the specification."""

from __future__ import annotations

import ipaddress
import os

import pytest

from mping_sender import wire

from helpers import ROOT

# protocol/ holds the project's copy of the shared specification, so that a
# lone clone can test; when shared/ sits beside the clone, the copy must match.
VECTORS = os.path.join(ROOT, "protocol", "vectors.txt")
SHARED = os.path.join(ROOT, "..", "shared", "protocol")


def load_vectors():
    blocks, current = [], {}
    with open(VECTORS) as f:
        for line in f:
            line = line.strip()
            if line.startswith("#"):
                continue
            if not line:
                if current:
                    blocks.append(current)
                current = {}
                continue
            key, _, value = line.partition(": ")
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def datagram_of(vector: dict) -> wire.Datagram:
    return wire.Datagram(
        version=vector["version"], type=vector["type"], ttl=int(vector["ttl"]),
        source=(ipaddress.ip_address(vector["source_address"]), int(vector["source_port"])),
        destination=(ipaddress.ip_address(vector["destination_address"]), int(vector["destination_port"])),
        sequence=int(vector["sequence"]), id=int(vector["id"]),
        seconds=int(vector["seconds"]), microseconds=int(vector["microseconds"]))


VECTOR_LIST = load_vectors()


@pytest.mark.parametrize("name", ["vectors.txt", "mping-protocol.md"])
def test_protocol_copy_matches_shared_specification(name):
    if not os.path.isdir(SHARED):
        pytest.skip("no shared/protocol beside this clone to compare with")
    with open(os.path.join(SHARED, name), "rb") as spec, open(os.path.join(ROOT, "protocol", name), "rb") as copy:
        assert copy.read() == spec.read(), f"protocol/{name} differs from shared/protocol/{name}"


def test_vectors_file_is_complete():
    assert [v["name"] for v in VECTOR_LIST] == ["v6-upstream", "v4-wrap", "v6-2.1"]


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=lambda v: v["name"])
def test_encode_matches_vector(vector):
    assert wire.encode(datagram_of(vector)).hex() == vector["hex"]


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=lambda v: v["name"])
def test_decode_matches_vector(vector):
    assert wire.decode(bytes.fromhex(vector["hex"])) == datagram_of(vector)


def test_sequence_wraps_to_zero():
    vector = next(v for v in VECTOR_LIST if v["name"] == "v4-wrap")
    after = datagram_of(vector).__class__(**{**datagram_of(vector)._asdict(), "sequence": 2**32})
    assert wire.decode(wire.encode(after)).sequence == 0


def test_write_counters_in_place_equals_encode():
    d = datagram_of(VECTOR_LIST[0])
    buffer = bytearray(wire.encode_prefix(d.version, d.type, d.ttl, d.source, d.destination) + bytes(24))
    wire.write_counters(buffer, d.sequence, d.id, d.seconds, d.microseconds)
    assert bytes(buffer).hex() == VECTOR_LIST[0]["hex"]


def test_payload_is_zero_bytes_after_header():
    d = datagram_of(VECTOR_LIST[1])
    raw = wire.encode(wire.Datagram(**{**d._asdict(), "payload_size": 100}))
    assert len(raw) == 388 and raw[288:] == bytes(100)
    assert wire.decode(raw).payload_size == 100


@pytest.mark.parametrize("monotonic_ns, seconds, microseconds", [
    (163169_553889_999, 163169, 553889),  # truncated, never rounded up into the next second
    (999_999_999, 0, 999999),
    (5_000_000_000, 5, 0),
])
def test_stamp_writes_the_send_time_as_seconds_and_microseconds(monotonic_ns, seconds, microseconds):
    d = datagram_of(VECTOR_LIST[0])
    buffer = bytearray(wire.encode_prefix(d.version, d.type, d.ttl, d.source, d.destination) + bytes(24))
    wire.stamp(buffer, d.sequence, d.id, monotonic_ns)
    stamped = wire.decode(bytes(buffer))
    assert (stamped.sequence, stamped.id, stamped.seconds, stamped.microseconds) == \
        (d.sequence, d.id, seconds, microseconds)


@pytest.mark.parametrize("mutate, message", [
    (lambda raw: raw[:287], "short"),
    (lambda raw: b"", "short"),
    (lambda raw: b"1.0\0" + raw[4:], "version"),
    (lambda raw: b"2.2\0" + raw[4:], "version"),
    (lambda raw: b"2.0x" + raw[4:], "version"),
    (lambda raw: raw[:4] + b"q" + raw[5:], "type"),
    (lambda raw: raw[:8] + b"\x07\x00" + raw[10:], "family"),
    (lambda raw: raw[:136] + b"\x00\x00" + raw[138:], "family"),
])
def test_decoder_rejects_invalid(mutate, message):
    with pytest.raises(wire.DecodeError, match=message):
        wire.decode(mutate(bytes.fromhex(VECTOR_LIST[0]["hex"])))


def test_decoder_accepts_reply_type():
    raw = bytearray.fromhex(VECTOR_LIST[0]["hex"])
    raw[4:5] = b"r"
    assert wire.decode(bytes(raw)).type == wire.TYPE_REPLY


@pytest.mark.parametrize("kwargs", [{"version": "3.0"}, {"type": "x"}, {"ttl": 256}, {"payload_size": 1761}])
def test_encoder_rejects_invalid_fields(kwargs):
    d = datagram_of(VECTOR_LIST[0])
    with pytest.raises(ValueError):
        wire.encode(wire.Datagram(**{**d._asdict(), **kwargs}))


def test_type_and_id_offsets_for_the_kernel_filter():
    """The reply socket's BPF filter reads the type and the id at these offsets."""
    prefix = wire.encode_prefix("2.0", wire.TYPE_SENDER, 5, (ipaddress.ip_address("10.0.0.1"), 1),
                                (ipaddress.ip_address("239.0.0.1"), 2))
    buffer = bytearray(prefix + bytes(wire.HEADER_SIZE - len(prefix)))
    wire.write_counters(buffer, 7, 0xABCDEF01, 1, 2)
    assert buffer[wire.TYPE_OFFSET:wire.TYPE_OFFSET + 1] == b"s"
    assert buffer[wire.ID_OFFSET:wire.ID_OFFSET + 4] == bytes.fromhex("abcdef01")
