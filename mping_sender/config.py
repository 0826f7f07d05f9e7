"""Command line parsing and validation: pure, no sockets, no host lookups.

Options and defaults match the original mping-sender 1.0; every problem is
reported as a UsageError naming the option, never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections import namedtuple

from mping_sender import __version__, log, wire
from mping_sender.errors import UsageError
from mping_sender.netif import display_name

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, Optional, Sequence, Tuple

PROG = "mping-sender"
LOG_LEVELS = tuple(log.LEVELS)  # the one table of level names, in log
SANDBOX_POLICIES = ("require", "best-effort", "off")
MIN_INTERVAL = 0.001
MAX_INTERVAL = 86400.0
IFNAMSIZ = 16  # the kernel's limit, NUL included
_NOT_IN_NAMES = b"\0/: \t\n\v\f\r\xa0"  # the kernel's isspace() counts 0xA0 (Latin-1 NBSP)
MAX_RECEIVER_TIMEOUT = 1000  # periods; also the size of the send-time window
SHOWN_LENGTH = 40  # characters of a value that a message echoes


_CONFIG_FIELDS = (
    "interface",  # bytes, as the kernel has it: not necessarily UTF-8
    "bind_address",  # Optional[wire.IPAddress]
    "bind_port", "group", "port", "ttl", "interval", "count",  # int, IPAddress, int, int, float, int
    "mping_version", "payload_size", "log_level", "allow_unicast", "sandbox",  # str, int, str, bool, str
    "replies", "receiver_timeout", "stats_json", "expect_replies",  # bool, int, Optional[str], bool
    "metrics_listen",  # Optional[Tuple[wire.IPAddress, int]]
)


class Config(namedtuple("Config", _CONFIG_FIELDS, defaults=(True, 5, None, False, None))):
    """The validated command line (a named tuple: see sandbox/common.py's Outcome)."""

    __slots__ = ()


# The command line as data: option -> (its argument's name, None for a flag;
# its default, the value when the option is not given, which --help shows as
# "(default: X)"; its help). A flag is False until given.
OPTIONS: Dict[str, Tuple[Optional[str], Optional[str], str]] = {
    "--help": (None, None, "show this help message and exit"),
    "--version": (None, None, "show program's version number and exit"),
    "--log-level": ("L", "info", "one of " + ", ".join(LOG_LEVELS)),
    "--interface-name": ("IF", None, "interface the datagrams leave from (required)"),
    "--bind-address": ("A", None, "source address (default: first usable address of IF in the group's family)"),
    "--bind-port": ("P", "4321", "source port"),
    "--address": ("G", "ff2e::42", "destination multicast group, IPv4 or IPv6"),
    "--port": ("P", "4321", "destination port"),
    "--ttl": ("N", "64", "TTL / hop limit 0..255, also written in the datagram"),
    "--interval": ("S", "1", f"seconds between datagrams, {MIN_INTERVAL:g}..{MAX_INTERVAL:g}"),
    "--count": ("N", "0", "stop after N datagrams, 0 runs until signalled"),
    "--mping-version": ("V", "2.0", "version string in the datagram, " + " or ".join(wire.VERSIONS)),
    "--payload-size": ("N", "0", f"zero bytes after the {wire.HEADER_SIZE}-byte header, 0..{wire.MAX_PAYLOAD_SIZE}"),
    "--allow-unicast": (None, None, "accept a unicast --address (default: multicast only)"),
    "--sandbox": ("MODE", "best-effort", "one of " + ", ".join(SANDBOX_POLICIES) + ": require exits 70 when a "
                  "layer cannot be applied, off is for debugging"),
    "--no-replies": (None, None, "do not listen for reflector replies (no second socket)"),
    "--receiver-timeout": ("N", "5", "periods after which a receiver counts as silent and a reply as late, "
                           f"1..{MAX_RECEIVER_TIMEOUT}"),
    "--stats-json": ("PATH", None, "write the reply statistics as JSON to PATH on exit ('-': standard output)"),
    "--expect-replies": (None, None, "with --count: exit 1 unless at least one receiver answered every datagram"),
    "--metrics-listen": ("ADDR:PORT", None, "serve Prometheus metrics over HTTP on ADDR:PORT, at /metrics (an IPv6 "
                         "address in brackets: [::1]:9810); off unless given"),
}
SHORT_NAMES = {"-h": "--help"}
DESCRIPTION = "Send one mping datagram per interval to a multicast group."
EPILOG = ("Exit codes: 0 success, 1 --expect-replies not met, 64 bad command line, 69 host cannot serve the "
          "request (interface, address), 70 required sandbox unavailable.")
HELP_COLUMN = 24  # where the options' help starts, at most (argparse's max_help_position)
NARROWEST = 11  # characters of text a line of help has at least, however narrow the terminal (as argparse)


class ShowAndExit(Exception):
    """--help or --version: a text for standard output and exit 0 instead of
    a run. Raised rather than printed, so that parsing stays pure."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


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


def _fill(words: Iterable[str], width: int, first: str = "", indent: str = "") -> str:
    """The words packed into lines of at most width characters, never split
    (a longer word gets a line of its own); the first line starts with
    first, the others with indent."""
    lines, line, empty = [], first, True
    for word in words:
        if not empty and len(line) + 1 + len(word) > width:
            lines.append(line)
            line, empty = indent, True
        line += word if empty else " " + word
        empty = False
    return "\n".join(lines + [line])


def help_text(width: int) -> str:
    """--help in lines of at most width characters (but for a word longer
    than the room it has), as argparse laid it out: usage, description, the
    options with their defaults, the exit codes."""
    width = max(width, NARROWEST)
    names = {name: [short for short, long in SHORT_NAMES.items() if long == name] + [name] for name in OPTIONS}
    argument = {name: f" {metavar}" if metavar else "" for name, (metavar, _, _) in OPTIONS.items()}
    usage = [f"[{names[name][0]}{argument[name]}]" for name in OPTIONS]
    leads = {name: "  " + ", ".join(names[name]) + argument[name] for name in OPTIONS}
    column = min(max(map(len, leads.values())) + 2, HELP_COLUMN, max(width - 20, 4))
    rows = []
    for name, (_, default, text) in OPTIONS.items():
        words = (text + (f" (default: {default})" if default is not None else "")).split()
        first = leads[name].ljust(column) if len(leads[name]) + 2 <= column else f"{leads[name]}\n{' ' * column}"
        rows.append(_fill(words, max(width, column + NARROWEST), first, " " * column))
    prefix = f"usage: {PROG} "
    return "\n\n".join([_fill(usage, width, prefix, " " * len(prefix)), _fill(DESCRIPTION.split(), width),
                        "options:\n" + "\n".join(rows), _fill(EPILOG.split(), width)]) + "\n"


# What --help and --version show instead of a run (the help, as argparse's,
# leaves the terminal's last two columns free).
_SHOWN = {"--help": lambda: help_text(_columns() - 2), "--version": lambda: f"{PROG} {__version__}\n"}


def _negative_number(word: str) -> bool:
    """-1, -.5, -1.5: a value, not an option (what argparse took for a
    negative number: no exponent, no second sign)."""
    whole, dot, fraction = word[1:].partition(".")
    if dot:
        return (whole == "" or whole.isdecimal()) and fraction.isdecimal()
    return whole.isdecimal()


def _option_like(word: str) -> bool:
    """Whether word is an option, not a value (``-`` alone is a value:
    standard output for --stats-json)."""
    return word.startswith("-") and word != "-" and not _negative_number(word)


def _scan(argv: Sequence[str]) -> Dict[str, Any]:
    """The options' values by name: the defaults, overridden by argv, where
    the last occurrence wins. ``--opt value`` or ``--opt=value``, names in
    full; ``--`` ends the options. An unknown option or a stray argument is
    reported after the scan, so that a later --help still shows the help."""
    values: Dict[str, Any] = {name: default if metavar else False for name, (metavar, default, _) in OPTIONS.items()}
    stray = ""
    options = True  # until "--"
    words = iter(argv)
    for word in words:
        if options and word == "--":
            options = False
            continue
        if not (options and _option_like(word)):
            stray = stray or f"unexpected argument '{shown(word)}'"
            continue
        given, equals, value = word.partition("=")
        name = SHORT_NAMES.get(given, given)
        if name not in OPTIONS:
            stray = stray or f"unknown option '{shown(word)}'"
            continue
        if OPTIONS[name][0] is None:
            if equals:
                raise UsageError(f"{given}: takes no value (given '{shown(value)}')")
            if name in _SHOWN:
                raise ShowAndExit(_SHOWN[name]())
            values[name] = True
            continue
        if not equals:
            following = next(words, None)
            if following is None or _option_like(following):
                raise UsageError(f"{given}: expected one argument")
            value = following
        values[name] = value
    if stray:
        raise UsageError(stray)
    return values


def shown(text: str) -> str:
    """A value as a message echoes it: cut after SHOWN_LENGTH characters (a
    5000-digit "number" is not a line)."""
    return text if len(text) <= SHOWN_LENGTH else text[:SHOWN_LENGTH] + "\u2026"


def _decimal(text: str, fraction: bool) -> bool:
    """ASCII digits, with a leading minus (so that -1 is out of range rather
    than no number) and, with ``fraction``, one decimal point; nothing else:
    not the rest of Python's syntax (1_0, +5, " 5", 1e3, inf, other scripts' digits)."""
    digits = text[1:] if text.startswith("-") else text
    whole, _, part = digits.partition(".") if fraction else (digits, "", "")
    return bool(whole or part) and all(piece.isascii() and piece.isdigit() for piece in (whole, part) if piece)


def _integer(option: str, text: str, low: int, high: int) -> int:
    if not _decimal(text, fraction=False):
        raise UsageError(f"{option}: '{shown(text)}' is not a whole number")
    # More digits than the bound has (leading zeros aside) is out of range
    # without converting them: Python 3.11 refuses over 4300 digits.
    if len(text.lstrip("-0")) > len(str(high)) or not low <= int(text) <= high:
        raise UsageError(f"{option}: {shown(text)} is out of range {low}..{high}")
    return int(text)


def _interval(text: str) -> float:
    if not _decimal(text, fraction=True):
        raise UsageError(f"--interval: '{shown(text)}' is not a number of seconds")
    value = float(text)
    if value <= 0:
        raise UsageError(f"--interval: '{shown(text)}' is not a positive number of seconds")
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise UsageError(f"--interval: {shown(text)} is out of range {MIN_INTERVAL:g}..{MAX_INTERVAL:g} seconds")
    return value


def _address(option: str, text: str) -> wire.IPAddress:
    """The address, without an IPv6 scope id ("%IF": _scope_id checks it)."""
    body, percent, _ = text.partition("%")
    try:
        address = ipaddress.ip_address(body)
    except ValueError:
        address = None
    if address is None or (percent and address.version != 6):
        raise UsageError(f"{option}: '{shown(text)}' is not an IPv4 or IPv6 address")
    return address


def _scope_id(option: str, text: Optional[str], interface: bytes) -> None:
    """An IPv6 address may carry a scope id, as users write link-local
    groups (ff02::42%eth0): accepted when it names the interface the
    datagrams leave from, which is the scope the program uses anyway, and
    refused when it names anything else (another interface, an index)."""
    if text is None or "%" not in text:
        return
    scope = text.partition("%")[2]
    if os.fsencode(scope) != interface:
        raise UsageError(f"{option}: the scope id '{shown(scope)}' in '{shown(text)}' is not the interface "
                         f"(--interface-name {display_name(interface)}): the datagrams leave from "
                         f"{display_name(interface)}, so the scope id may only name it, or be left out")


LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
HOST_SCOPES = {0: "reserved", 1: "interface-local"}  # IPv6 multicast scopes that stay on the host


SCOPE_LINK_LOCAL = 2
SCOPE_SITE_LOCAL = 5
SCOPE_GLOBAL = 14


def ipv6_scope(address: ipaddress.IPv6Address) -> int:
    """The scope of an IPv6 address, in the numbers of the multicast scope
    field (RFC 4291 2.7, RFC 4007): a group's own field; for a unicast
    address, link-local, the deprecated site-local, or global (unique local
    addresses, fc00::/7, are global in scope)."""
    if address.is_multicast:
        return address.packed[1] & 0x0F
    if address.is_link_local:
        return SCOPE_LINK_LOCAL
    return SCOPE_SITE_LOCAL if address.is_site_local else SCOPE_GLOBAL


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
        raise UsageError(f"--address: {shown(text)} {problem}")
    if group.version == 6 and group.is_multicast and ipv6_scope(group) in HOST_SCOPES:
        raise UsageError(f"--address: {shown(text)} has multicast scope {ipv6_scope(group)} "
                         f"({HOST_SCOPES[ipv6_scope(group)]}): it never leaves the host")
    if not group.is_multicast and not allow_unicast:
        raise UsageError(f"--address: {shown(str(group))} is not a multicast group "
                         "(use --allow-unicast to send to it)")
    if not group.is_multicast and ttl == 0:
        raise UsageError(f"--ttl: 0 keeps unicast datagrams to {shown(str(group))} on this host "
                         "(0 only works for a group)")
    return group


def _bind_address(text: Optional[str], group: wire.IPAddress) -> Optional[wire.IPAddress]:
    if text is None:
        return None
    address = _address("--bind-address", text)
    if address.version != group.version:
        raise UsageError(f"--bind-address: {shown(str(address))} is IPv{address.version} "
                         f"but the group {shown(str(group))} is IPv{group.version}")
    if address.is_multicast:
        raise UsageError(f"--bind-address: {shown(str(address))} is a multicast address, not a source")
    problem = _never_leaves(address)
    if problem:
        raise UsageError(f"--bind-address: {shown(text)} {problem}")
    return address


def _interface(text: Optional[str]) -> bytes:
    """The name as bytes, exactly as given on the command line whatever the
    locale (os.fsencode undoes Python's decoding of argv), checked by the
    kernel's rules (dev_valid_name)."""
    if text is None:
        raise UsageError("--interface-name is required")
    name = os.fsencode(text)
    if not 0 < len(name) < IFNAMSIZ or name in (b".", b"..") or any(byte in _NOT_IN_NAMES for byte in name):
        raise UsageError(f"--interface-name: '{shown(display_name(name))}' is not a valid interface name")
    return name


def _listen_address(text: Optional[str]) -> Optional[Tuple[wire.IPAddress, int]]:
    """--metrics-listen: ADDR:PORT, an IPv6 address in brackets ([ADDR]:PORT)."""
    if text is None:
        return None
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise UsageError(f"--metrics-listen: '{shown(text)}' is not ADDR:PORT")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--metrics-listen: '{shown(text)}': an IPv6 address goes in brackets, [ADDR]:PORT")
    address = _address("--metrics-listen", host)
    if bracketed and address.version != 6:
        raise UsageError(f"--metrics-listen: '{shown(text)}': only an IPv6 address goes in brackets")
    if "%" in host:
        raise UsageError(f"--metrics-listen: '{shown(text)}': no scope id here (listen on a global or unique "
                         "local address, or on [::] for every address)")
    if address.is_multicast:
        raise UsageError(f"--metrics-listen: {address} is a multicast address")
    return address, _integer("--metrics-listen", port, 1, 65535)


def _choice(option: str, text: str, choices: Sequence[str]) -> str:
    value = text.lower()
    if value not in choices:
        raise UsageError(f"{option}: '{shown(text)}' is not one of {', '.join(choices)}")
    return value


def _reply_options(given: Dict[str, Any], count: int) -> None:
    """The reply options need the reply socket, and --expect-replies an end."""
    if given["--no-replies"]:
        for option, wanted in (("--stats-json", given["--stats-json"] is not None),
                               ("--expect-replies", given["--expect-replies"])):
            if wanted:
                raise UsageError(f"{option} needs the replies that --no-replies turns off")
    if given["--expect-replies"] and count == 0:
        raise UsageError("--expect-replies needs --count N (N > 0)")
    if given["--stats-json"] == "":
        raise UsageError("--stats-json: the path is empty")


def parse(argv: Sequence[str]) -> Config:
    """Turn argv (without the program name) into a Config, or raise
    UsageError, or ShowAndExit for --help and --version."""
    given = _scan(argv)
    ttl = _integer("--ttl", given["--ttl"], 0, 255)
    group = _group(given["--address"], given["--allow-unicast"], ttl)
    count = _integer("--count", given["--count"], 0, 2**63 - 1)
    _reply_options(given, count)
    interface = _interface(given["--interface-name"])
    for option in ("--address", "--bind-address"):
        _scope_id(option, given[option], interface)
    return Config(
        interface=interface,
        bind_address=_bind_address(given["--bind-address"], group),
        bind_port=_integer("--bind-port", given["--bind-port"], 0, 65535),
        group=group,
        port=_integer("--port", given["--port"], 1, 65535),
        ttl=ttl,
        interval=_interval(given["--interval"]),
        count=count,
        mping_version=_choice("--mping-version", given["--mping-version"], wire.VERSIONS),
        payload_size=_integer("--payload-size", given["--payload-size"], 0, wire.MAX_PAYLOAD_SIZE),
        log_level=_choice("--log-level", given["--log-level"], LOG_LEVELS),
        allow_unicast=given["--allow-unicast"],
        sandbox=_choice("--sandbox", given["--sandbox"], SANDBOX_POLICIES),
        replies=not given["--no-replies"],
        receiver_timeout=_integer("--receiver-timeout", given["--receiver-timeout"], 1, MAX_RECEIVER_TIMEOUT),
        stats_json=given["--stats-json"],
        expect_replies=given["--expect-replies"],
        metrics_listen=_listen_address(given["--metrics-listen"]),
    )
