"""Command line parsing and validation: pure, no sockets, no host lookups.

Options and defaults match the original mping-sender 1.0; every problem is
reported as a UsageError naming the option, never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from collections import namedtuple

from mping_sender import __version__, log, wire
from mping_sender.errors import UsageError

TYPE_CHECKING = False  # typing is for the checker: not imported at run time (start-up cost, issue 12)
if TYPE_CHECKING:
    from typing import List, Optional, Sequence

PROG = "mping-sender"
LOG_LEVELS = tuple(log.LEVELS)  # the one table of level names, in log
SANDBOX_POLICIES = ("require", "best-effort", "off")
MIN_INTERVAL = 0.001
MAX_INTERVAL = 86400.0
IFNAMSIZ = 16  # the kernel's limit, NUL included
_NOT_IN_NAMES = b"\0/: \t\n\v\f\r\xa0"  # the kernel's isspace() counts 0xA0 (Latin-1 NBSP)
MAX_RECEIVER_TIMEOUT = 1000  # periods; also the size of the send-time window


_CONFIG_FIELDS = (
    "interface",  # bytes, as the kernel has it: not necessarily UTF-8
    "bind_address",  # Optional[wire.IPAddress]
    "bind_port", "group", "port", "ttl", "interval", "count",  # int, IPAddress, int, int, float, int
    "mping_version", "payload_size", "log_level", "allow_unicast", "sandbox",  # str, int, str, bool, str
    "replies", "receiver_timeout", "stats_json", "expect_replies",  # bool, int, Optional[str], bool
)


class Config(namedtuple("Config", _CONFIG_FIELDS, defaults=(True, 5, None, False))):
    """The validated command line (a named tuple: see sandbox/common.py's Outcome)."""

    __slots__ = ()


class _Parser(argparse.ArgumentParser):
    """argparse, but errors become a UsageError instead of exit(2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size finds it ($COLUMNS,
    else standard output's terminal, else 80), without importing shutil."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, given its width. Left to itself it imports
    shutil for the width, which imports bz2, lzma and fnmatch: ~0.9 MiB and a
    few ms at every start, since add_argument builds a formatter for each
    option, for a help text that is rarely printed (issue 12)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        allow_abbrev=False,
        description="Send one mping datagram per interval to a multicast group.",
        epilog="Exit codes: 0 success, 1 --expect-replies not met, 64 bad command line, 69 host cannot serve "
        "the request (interface, address), 70 required sandbox unavailable.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--log-level", default="info", metavar="L",
                   help="one of " + ", ".join(LOG_LEVELS) + " (default: %(default)s)")
    p.add_argument("--interface-name", metavar="IF",
                   help="interface the datagrams leave from (required)")
    p.add_argument("--bind-address", metavar="A",
                   help="source address (default: first usable address of IF in the group's family)")
    p.add_argument("--bind-port", default="4321", metavar="P", help="source port (default: %(default)s)")
    p.add_argument("--address", default="ff2e::42", metavar="G",
                   help="destination multicast group, IPv4 or IPv6 (default: %(default)s)")
    p.add_argument("--port", default="4321", metavar="P", help="destination port (default: %(default)s)")
    p.add_argument("--ttl", default="64", metavar="N",
                   help="TTL / hop limit 0..255, also written in the datagram (default: %(default)s)")
    p.add_argument("--interval", default="1", metavar="S",
                   help=f"seconds between datagrams, {MIN_INTERVAL:g}..{MAX_INTERVAL:g} (default: %(default)s)")
    p.add_argument("--count", default="0", metavar="N",
                   help="stop after N datagrams, 0 runs until signalled (default: %(default)s)")
    p.add_argument("--mping-version", default="2.0", metavar="V",
                   help="version string in the datagram, " + " or ".join(wire.VERSIONS) + " (default: %(default)s)")
    p.add_argument("--payload-size", default="0", metavar="N",
                   help=f"zero bytes after the {wire.HEADER_SIZE}-byte header, "
                   f"0..{wire.MAX_PAYLOAD_SIZE} (default: %(default)s)")
    p.add_argument("--allow-unicast", action="store_true",
                   help="accept a unicast --address (default: multicast only)")
    p.add_argument("--sandbox", default="best-effort", metavar="MODE",
                   help="one of " + ", ".join(SANDBOX_POLICIES) + ": require exits 70 when a layer cannot "
                   "be applied, off is for debugging (default: %(default)s)")
    p.add_argument("--no-replies", action="store_true",
                   help="do not listen for reflector replies (no second socket)")
    p.add_argument("--receiver-timeout", default="5", metavar="N",
                   help=f"periods after which a receiver counts as silent and a reply as late, "
                   f"1..{MAX_RECEIVER_TIMEOUT} (default: %(default)s)")
    p.add_argument("--stats-json", metavar="PATH",
                   help="write the reply statistics as JSON to PATH on exit ('-': standard output)")
    p.add_argument("--expect-replies", action="store_true",
                   help="with --count: exit 1 unless at least one receiver answered every datagram")
    return p


def _integer(option: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not a whole number") from None
    if not low <= value <= high:
        raise UsageError(f"{option}: {value} is out of range {low}..{high}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--interval: '{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"--interval: '{text}' is not a positive number of seconds")
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise UsageError(f"--interval: {text} is out of range {MIN_INTERVAL:g}..{MAX_INTERVAL:g} seconds")
    return value


def _address(option: str, text: str) -> wire.IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"{option}: '{text}' is not an IPv4 or IPv6 address") from None


LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
HOST_SCOPES = {0: "reserved", 1: "interface-local"}  # IPv6 multicast scopes that stay on the host


def ipv6_scope(group: ipaddress.IPv6Address) -> int:
    """The scope field of an IPv6 multicast group (RFC 4291 2.7)."""
    return group.packed[1] & 0x0F


def _never_leaves(address: wire.IPAddress) -> str:
    """Why datagrams to or from ``address`` can never be on the interface's wire ('' if they can)."""
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_loopback:
        return "is a loopback address: it never leaves the host"
    if address.version == 6 and address.ipv4_mapped is not None:
        return "is an IPv4-mapped address: use the IPv4 address itself"
    if address.version == 4 and (address == LIMITED_BROADCAST or address in THIS_NETWORK):
        return "is not a usable IPv4 address (broadcast, or 0.0.0.0/8)"
    return ""


def _group(text: str, allow_unicast: bool, ttl: int) -> wire.IPAddress:
    group = _address("--address", text)
    problem = _never_leaves(group)
    if problem:
        raise UsageError(f"--address: {text} {problem}")
    if group.version == 6 and group.is_multicast and ipv6_scope(group) in HOST_SCOPES:
        raise UsageError(f"--address: {text} has multicast scope {ipv6_scope(group)} "
                         f"({HOST_SCOPES[ipv6_scope(group)]}): it never leaves the host")
    if not group.is_multicast and not allow_unicast:
        raise UsageError(f"--address: {group} is not a multicast group (use --allow-unicast to send to it)")
    if not group.is_multicast and ttl == 0:
        raise UsageError(f"--ttl: 0 keeps unicast datagrams to {group} on this host (0 only works for a group)")
    return group


def _bind_address(text: Optional[str], group: wire.IPAddress) -> Optional[wire.IPAddress]:
    if text is None:
        return None
    address = _address("--bind-address", text)
    if address.version != group.version:
        raise UsageError(f"--bind-address: {address} is IPv{address.version} but the group {group} is IPv{group.version}")
    if address.is_multicast:
        raise UsageError(f"--bind-address: {address} is a multicast address, not a source")
    problem = _never_leaves(address)
    if problem:
        raise UsageError(f"--bind-address: {text} {problem}")
    return address


def display_name(name: bytes) -> str:
    """An interface name for messages: UTF-8 as is, other bytes as \\xNN escapes."""
    return name.decode("utf-8", "backslashreplace")


def _interface(text: Optional[str]) -> bytes:
    """The name as bytes, exactly as given on the command line whatever the
    locale (os.fsencode undoes Python's decoding of argv), checked by the
    kernel's rules (dev_valid_name)."""
    if text is None:
        raise UsageError("--interface-name is required")
    name = os.fsencode(text)
    if not 0 < len(name) < IFNAMSIZ or name in (b".", b"..") or any(byte in _NOT_IN_NAMES for byte in name):
        raise UsageError(f"--interface-name: '{display_name(name)}' is not a valid interface name")
    return name


def _choice(option: str, text: str, choices: Sequence[str]) -> str:
    value = text.lower()
    if value not in choices:
        raise UsageError(f"{option}: '{text}' is not one of {', '.join(choices)}")
    return value


def _reply_options(ns: argparse.Namespace, count: int) -> None:
    """The reply options need the reply socket, and --expect-replies an end."""
    if ns.no_replies:
        for option, given in (("--stats-json", ns.stats_json is not None), ("--expect-replies", ns.expect_replies)):
            if given:
                raise UsageError(f"{option} needs the replies that --no-replies turns off")
    if ns.expect_replies and count == 0:
        raise UsageError("--expect-replies needs --count N (N > 0)")
    if ns.stats_json == "":
        raise UsageError("--stats-json: the path is empty")


def parse(argv: List[str]) -> Config:
    """Turn argv (without the program name) into a Config or raise UsageError."""
    ns, extra = _parser().parse_known_args(argv)
    if extra:
        kind = "unknown option" if extra[0].startswith("-") else "unexpected argument"
        raise UsageError(f"{kind} '{extra[0]}'")
    ttl = _integer("--ttl", ns.ttl, 0, 255)
    group = _group(ns.address, ns.allow_unicast, ttl)
    count = _integer("--count", ns.count, 0, 2**63 - 1)
    _reply_options(ns, count)
    return Config(
        interface=_interface(ns.interface_name),
        bind_address=_bind_address(ns.bind_address, group),
        bind_port=_integer("--bind-port", ns.bind_port, 0, 65535),
        group=group,
        port=_integer("--port", ns.port, 1, 65535),
        ttl=ttl,
        interval=_interval(ns.interval),
        count=count,
        mping_version=_choice("--mping-version", ns.mping_version, wire.VERSIONS),
        payload_size=_integer("--payload-size", ns.payload_size, 0, wire.MAX_PAYLOAD_SIZE),
        log_level=_choice("--log-level", ns.log_level, LOG_LEVELS),
        allow_unicast=ns.allow_unicast,
        sandbox=_choice("--sandbox", ns.sandbox, SANDBOX_POLICIES),
        replies=not ns.no_replies,
        receiver_timeout=_integer("--receiver-timeout", ns.receiver_timeout, 1, MAX_RECEIVER_TIMEOUT),
        stats_json=ns.stats_json,
        expect_replies=ns.expect_replies,
    )
