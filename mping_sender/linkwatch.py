"""Follow the interface by its index through flaps and renames, and the
bound source address through removal, renumbering and (IPv6) failed
duplicate address detection.

The interface is looked at through ioctls on the transmit socket, still
allowed under the sandbox: the name its index has now, then that name's
flags; once a second, and after a failed send (a send to the index of an
interface that was deleted fails, ENODEV or ENETUNREACH). Each change of
state is logged once. A link that flaps (down, up) keeps its index, its
group memberships and the sockets' aim: it is survived in place, as is a
rename (same index: the watch follows it, and logs it once).

An interface whose index left the namespace (deleted, or moved to another
network namespace) takes the sockets' configuration with it: the group
memberships, and with a new index the multicast interface the transmit
socket sends out of. Setting them again needs setsockopt, which the sandbox
does not allow (an attacker in the process could aim the sockets anywhere
with it). So when such an interface is back, under its index (moved back)
or under its name (re-created), the watch raises InterfaceReplaced: one
line, exit 69, and the unit restarts the sender, whose start-up wait takes over.
"""

from __future__ import annotations

import socket

from mping_sender import netif, wire
from mping_sender.errors import HostError
from mping_sender.log import INFO, WARNING
from mping_sender.netif import display_name
from mping_sender.ratelimit import LogLimit
from mping_sender.source import fitting

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Optional, Tuple

    from mping_sender.log import Logger

GONE = "is gone"
DOWN = "is down"
NO_CARRIER = "has no carrier"
UP = "is up"


def state_of(flags: Optional[int]) -> str:
    """The operator's view of an interface from its IFF_* flags (None: gone)."""
    if flags is None:
        return GONE
    if not flags & netif.IFF_UP:
        return DOWN
    if not flags & netif.IFF_RUNNING:
        return NO_CARRIER
    return UP


class InterfaceReplaced(HostError):
    """The interface left the namespace and is back: the sockets cannot be
    set up again inside the sandbox (exit 69, the unit restarts the sender)."""


class InterfaceWatch:
    """The interface's index, current name and last known state; and, when
    the sockets joined the group (``memberships``: the membership table's
    descriptor and the group), that the kernel still lists it there. An
    interface that left the namespace and came back between two looks
    shows nothing else: the membership alone tells."""

    def __init__(self, sock: socket.socket, name: bytes, ifindex: int, log: Logger,
                 memberships: Optional[Tuple[int, wire.IPAddress]] = None) -> None:
        self._sock = sock
        self._memberships = memberships
        self._configured = name  # the name a re-created interface would come back under
        self.name = name
        self.ifindex = ifindex
        self.state = UP
        self._left = False  # the index left the namespace: whatever comes back is not configured
        self._limit = LogLimit(log, f"interface {display_name(name)} state")

    def check(self) -> None:
        """Look at the interface now (its index's name, then that name's
        flags), log what changed; InterfaceReplaced when it came back after
        its index left the namespace."""
        name = netif.name_of(self._sock, self.ifindex)
        if name is None:
            self._left = True
            again = netif.index_if_present(self._sock, self._configured)
            if again is not None:
                self._replaced(f"was re-created (index {again}, was {self.ifindex})")
            self._note(GONE)
            return
        if self._left:
            self._replaced(f"is back with index {self.ifindex} after it left this network namespace "
                           "(moved to another and back?); its group memberships went with it")
        if self._memberships is not None and not netif.joined(netif.read_table(self._memberships[0]),
                                                             self.ifindex, self._memberships[1]):
            self._replaced(f"(index {self.ifindex}) lost the group membership of its sockets (it left this "
                           "network namespace and came back?)")
        if name != self.name:
            self._limit.log(INFO, "interface %s (index %d) is now called %s: following it",
                            display_name(self.name), self.ifindex, display_name(name))
            self.name = name
        self._note(state_of(netif.flags_if_present(self._sock, name)))

    def _replaced(self, what: str) -> None:
        raise InterfaceReplaced(f"interface {display_name(self._configured)} {what}: the sockets cannot be set up "
                                "again inside the sandbox; exiting for a restart")

    def _note(self, state: str) -> None:
        if state != self.state:
            if state == UP:
                self._limit.end(INFO, "interface %s %s", display_name(self.name), state)
            else:
                self._limit.begin(WARNING, "interface %s %s", display_name(self.name), state)
            self.state = state


class SourceRenumbered(HostError):
    """The source address chosen at start-up is gone and another one fits
    (renumbering): binding the socket to it again is impossible inside the
    sandbox, so the run ends (exit 69) and the unit's restart picks it."""


class SourceWatch:
    """The bound source address, looked up in the interface's addresses
    (netif.Ipv6Sources, netif.Ipv4Sources). Linux keeps sending from a bound
    IPv6 address that was removed or failed duplicate address detection,
    and an IPv4 one fails with a mere ENETUNREACH, so the sender must notice
    by itself and say what is missing: while the address is not usable
    (gone; for IPv6 also tentative or failed) the transmitter refuses to
    send, and the outage is counted and logged like any other. Looked up
    once a second, after the send of that tick: a read of the table costs
    the kernel more than the send itself.

    ``group``: the source was chosen automatically for this destination.
    While it is unusable, another address of the interface that fits the
    destination (source.fitting) means renumbering: SourceRenumbered. An
    explicit --bind-address has none: it is waited for, however long."""

    def __init__(self, table, interface: InterfaceWatch, address: wire.IPAddress, log: Logger,
                 group: Optional[wire.IPAddress] = None) -> None:
        self._table = table
        self._interface = interface  # the interface's name is the one it has now
        self._address = address
        self._key = table.key(address)
        self._group = group
        self._limit = LogLimit(log, f"source address {address}")
        self._usable = True

    def check(self) -> bool:
        """Look the address up now; log a change; return whether it is usable.
        SourceRenumbered when it is not and another one fits."""
        usable = self._table.usable(self._interface.name, self._key)
        if usable != self._usable:
            self._usable = usable
            if usable:
                self._limit.end(INFO, "source address %s is usable again", self._address)
            else:
                self._limit.begin(WARNING, "source address %s is no longer usable on %s (removed, or "
                                  "duplicate address detection failed): not sending from it",
                                  self._address, display_name(self._interface.name))
        if not usable and self._group is not None:
            self._look_for_another()
        return usable

    def _look_for_another(self) -> None:
        others = [address for address in fitting(self._group, self._table.addresses(self._interface.name))
                  if address != self._address]
        if others:
            raise SourceRenumbered(f"source address {self._address} is gone from {display_name(self._interface.name)} and "
                                   f"{others[0]} is usable there now (renumbered?): exiting, to start again from it")
