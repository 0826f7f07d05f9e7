"""The host side of start-up: the interface, and the source address the
datagrams leave from.

Without --bind-address the source is chosen among the interface's usable
addresses of the group's family. For IPv6 the scope decides (config.ipv6_scope,
RFC 4007): a link-local source only for a link-local destination, because
routers forward nothing from a link-local source beyond the link; for any
wider destination, a multicast group or a unicast address alike, only an
address of wider scope will do. At boot such an address is often still
tentative (duplicate address detection) when the link-local one is ready,
so the start-up wait waits for it rather than taking the link-local one.
"""

from __future__ import annotations

import select
import time

from mping_sender import config, netif, transmit, wire
from mping_sender.errors import HostError, UsageError

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple

    from mping_sender.log import Logger
    from mping_sender.signals import SignalPipe

START_WAIT = 10.0  # seconds to wait at start-up for the interface to come up and its address to be usable
START_POLL = 0.1  # seconds between looks while waiting


class NotYet(HostError):
    """A host condition that a booting system often clears by itself (the
    interface not up yet, its address still tentative): worth a short wait."""


def interface_index(sock, interface: bytes) -> int:
    """The interface's index, once it is known to be up and multicast-capable."""
    name = netif.display_name(interface)
    try:
        found = netif.probe(sock, interface)
    except OSError as err:
        raise HostError(f"interface {name}: {err.strerror}") from None
    if found is None:
        raise HostError(f"interface {name} does not exist")
    ifindex, flags = found
    if not flags & netif.IFF_MULTICAST:
        raise HostError(f"interface {name} has no MULTICAST flag")
    if not flags & netif.IFF_UP:
        raise NotYet(f"interface {name} is not up")
    return ifindex


def refuse_broadcast(cfg: config.Config) -> None:
    """A unicast --address that is an IPv4 broadcast address of this host would
    fail every send (EACCES: no SO_BROADCAST): refuse it at start-up."""
    if cfg.group.is_multicast or cfg.group.version != 4:
        return
    for name, broadcast in netif.broadcast_addresses():
        if broadcast == cfg.group:
            raise UsageError(f"--address: {cfg.group} is the broadcast address of interface "
                             f"{netif.display_name(name)}; broadcast is not supported")


def fitting(group: wire.IPAddress, found: Iterable[wire.IPAddress]) -> List[wire.IPAddress]:
    """The addresses of ``found`` that may be the source for ``group``, best
    first: for a link-local destination the link-local ones first, for a
    wider one no link-local address at all. IPv4 takes them all, in order."""
    if group.version == 4:
        return list(found)
    if config.ipv6_scope(group) <= config.SCOPE_LINK_LOCAL:
        return sorted(found, key=lambda address: not address.is_link_local)
    return [address for address in found if not address.is_link_local]


def scope_wanted(group: wire.IPAddress) -> str:
    """What a fitting source is, for messages ('' when any address of the family is)."""
    if group.version == 6 and config.ipv6_scope(group) > config.SCOPE_LINK_LOCAL:
        return " wider than link-local"
    return ""


def candidates(cfg: config.Config) -> List[wire.IPAddress]:
    """The given bind address, or the interface's usable addresses that fit
    the group, best first; NotYet when there is none (yet)."""
    if cfg.bind_address is not None:
        return [cfg.bind_address]
    found = netif.addresses(cfg.interface, cfg.group.version)
    chosen = fitting(cfg.group, found)
    if not chosen:
        name = netif.display_name(cfg.interface)
        wanted = scope_wanted(cfg.group)
        unfit = f" (only {', '.join(map(str, found))}, which routers do not forward from)" if found else ""
        raise NotYet(f"interface {name} has no usable IPv{cfg.group.version} address{wanted} for "
                     f"{cfg.group}{unfit}")
    return chosen


def bind_source(cfg: config.Config, sock) -> Tuple[int, wire.Endpoint]:
    """Interface index and bound source, or NotYet while the host is still coming up."""
    ifindex = interface_index(sock, cfg.interface)
    try:
        return ifindex, transmit.attach(sock, cfg.group, cfg.port, ifindex, candidates(cfg), cfg.bind_port)
    except transmit.AddressNotAvailable as err:
        raise NotYet(str(err)) from None


def wait_for_host(cfg: config.Config, sock, signals: SignalPipe, log: Logger) -> Optional[Tuple[int, wire.Endpoint]]:
    """bind_source, retried for up to START_WAIT seconds while the interface
    is not up or no fitting address is usable yet (at boot, duplicate address
    detection keeps a new IPv6 address tentative for a second or two).
    Logged once; what still fails then is exit 69, which the unit restarts.
    None when a stop signal came during the wait: the run ends at once."""
    deadline = time.monotonic() + START_WAIT
    waiting = False
    while True:
        try:
            found = bind_source(cfg, sock)
        except NotYet as err:
            if time.monotonic() >= deadline:
                raise HostError(f"{err} (waited {START_WAIT:g} s)") from None
            if not waiting:
                log.warning("%s: waiting up to %g s", err, START_WAIT)
                waiting = True
            # The signal pipe ends the pause as soon as a signal comes.
            select.select([signals], [], [], START_POLL)
            if signals.stop_requested():
                return None
            continue
        if waiting:
            log.info("interface %s is ready", netif.display_name(cfg.interface))
        return found
