"""The IPv6 address table as the kernel writes it (/proc/net/if_inet6):
the whole parse used at start-up, and the one-line look of the send tick,
which must always agree with it."""

import ipaddress
import os
import random
import socket
import struct

import pytest

from mping_sender import netif

TABLE = (b"fd000000000000000000000000000001 03 40 00 80     snd0\n"
         b"fe800000000000000000000000000001 03 40 20 80     snd0\n"
         b"fe800000000000000000000000000001 05 40 20 80    snd00\n"  # the same link-local on another interface
         b"fd000000000000000000000000000002 03 40 00 c0     snd0\n"  # tentative (0x40, with permanent 0x80)
         b"fd000000000000000000000000000003 03 40 00 88     snd0\n"  # duplicate address detection failed
         b"00000000000000000000000000000001 01 80 10 80       lo\n")


def key(text: str) -> bytes:
    return netif.table_key(ipaddress.IPv6Address(text))


@pytest.mark.parametrize("address, name, usable", [
    ("fd00::1", b"snd0", True),
    ("fe80::1", b"snd0", True),
    ("fe80::1", b"snd00", True),
    ("fe80::1", b"snd", False),
    ("fd00::1", b"snd00", False),
    ("fd00::2", b"snd0", False),
    ("fd00::3", b"snd0", False),
    ("fd00::4", b"snd0", False),
    ("::1", b"lo", True),
])
def test_the_one_line_look_finds_the_address_on_its_interface_and_usable(address, name, usable):
    assert netif.listed_usable(TABLE, name, key(address)) is usable
    assert (ipaddress.IPv6Address(address) in netif.parse_if_inet6(TABLE, name)) is usable


def test_a_table_without_its_last_newline_is_still_read():
    assert netif.listed_usable(TABLE.rstrip(b"\n"), b"lo", key("::1"))


def test_the_one_line_look_agrees_with_the_whole_parse_on_random_tables():
    rng = random.Random(12)
    names = [b"a", b"a0", b"eth0", b"x:1"]
    for _ in range(300):
        lines, listed = [], set()
        for _ in range(rng.randrange(0, 12)):
            address = ipaddress.IPv6Address(rng.choice([0xfd00 << 112, 0xfe80 << 112]) + rng.randrange(4))
            name = rng.choice(names)
            if (address, name) in listed:  # the kernel lists an address once per interface
                continue
            listed.add((address, name))
            flags = rng.choice([0x80, 0xc0, 0x88, 0x00, 0x20])
            lines.append(b"%s %02x 40 00 %02x %8s\n" % (netif.table_key(address), 3, flags, name))
        table = b"".join(lines)
        for name in names:
            usable = netif.parse_if_inet6(table, name)
            for n in range(4):
                for prefix in (0xfd00 << 112, 0xfe80 << 112):
                    address = ipaddress.IPv6Address(prefix + n)
                    assert netif.listed_usable(table, name, netif.table_key(address)) == (address in usable), table


def kernel_ifreq(order: str, name: bytes, field: str, value: int) -> bytes:
    """A struct ifreq as the kernel hands it back: the name, the union's
    member (``h``/``H`` a short, ``i`` an int) at its start, zeros after."""
    return name.ljust(16, b"\0") + struct.pack(order + field, value).ljust(24, b"\0")


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_ifreq_layouts_read_the_flags_as_the_short_and_the_index_as_the_int_they_are(order):
    """The package is for every architecture: s390x and ppc64 are big-endian,
    where a short read as an int is in the wrong half."""
    index_layout, flags_layout = netif.ifreq_structs(order)
    flags = netif.IFF_UP | netif.IFF_RUNNING | netif.IFF_MULTICAST
    assert flags_layout.unpack(kernel_ifreq(order, b"snd0", "H", flags)) == (b"snd0".ljust(16, b"\0"), flags)
    assert index_layout.unpack(kernel_ifreq(order, b"snd0", "i", 70000)) == (b"snd0".ljust(16, b"\0"), 70000)
    for layout in (index_layout, flags_layout):
        assert layout.pack(b"snd0", 0) == b"snd0".ljust(40, b"\0")  # room for the largest union member


def test_the_native_layout_reads_this_host_s_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        found = netif.probe(sock, b"lo")
    assert found is not None and found[0] == socket.if_nametoindex("lo")
    assert found[1] & netif.IFF_UP and not found[1] & ~0xFFFF


IGMP = (b"Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n"
        b"1\tlo        :     1      V3\n"
        b"\t\t\t\t010000E0     1 0:00000000\t\t0\n"
        b"12\tsnd0      :     2      V3\n"
        b"\t\t\t\t012AFFEF     1 0:00000000\t\t0\n"
        b"\t\t\t\t010000E0     1 0:00000000\t\t0\n")
IGMP6 = (b"1    lo              ff020000000000000000000000000001     1 0000000C 0\n"
         b"12   snd0            ff2e0000000000000000000000000042     1 00000004 0\n")


@pytest.mark.parametrize("table, ifindex, group, joined", [
    (IGMP, 12, "239.255.42.1", True),
    (IGMP, 1, "239.255.42.1", False),  # another interface's group
    (IGMP, 2, "239.255.42.1", False),  # "12" is not "2"
    (IGMP, 12, "239.255.42.2", False),
    (IGMP6, 12, "ff2e::42", True),
    (IGMP6, 1, "ff2e::42", False),
    (IGMP6, 2, "ff2e::42", False),
    (IGMP6, 12, "ff2e::43", False),
])
def test_a_membership_is_found_on_its_interface_only(table, ifindex, group, joined):
    if table is IGMP and struct.pack("=I", 1) != struct.pack("<I", 1):  # the table writes host byte order
        table = table.replace(b"012AFFEF", b"EFFF2A01").replace(b"010000E0", b"E0000001")
    assert netif.joined(table, ifindex, ipaddress.ip_address(group)) is joined


@pytest.mark.parametrize("version, group", [(4, "224.0.0.1"), (6, "ff02::1")])
def test_the_kernels_own_table_lists_the_all_hosts_group_on_lo(version, group):
    fd = netif.open_membership_table(version)
    try:
        table = netif.read_table(fd)
    finally:
        os.close(fd)
    assert netif.joined(table, socket.if_nametoindex("lo"), ipaddress.ip_address(group)), table[:300]
