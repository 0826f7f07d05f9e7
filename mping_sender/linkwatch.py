"""Follow the interface by name through flaps, deletion and re-creation,
and the bound source address through removal, renumbering and (IPv6)
failed duplicate address detection.

The interface is looked at through ioctls on the transmit socket, still
allowed under the sandbox: its flags once a second (one ioctl), and its
index and flags after every failed send. A send to the index of an
interface that was deleted fails (ENODEV, ENETUNREACH), so a recreated
interface is found at the next datagram without looking for it every
second. Each change of state is logged once and, when the name comes back
under a new index, the listeners (the transmit socket, the reply socket)
re-point.
"""

from __future__ import annotations

import socket

from mping_sender import netif, wire
from mping_sender.config import display_name
from mping_sender.errors import HostError
from mping_sender.log import INFO, WARNING
from mping_sender.ratelimit import LogLimit
from mping_sender.source import fitting

TYPE_CHECKING = False  # typing is for the checker: not imported at run time (start-up cost, issue 12)
if TYPE_CHECKING:
    from typing import Callable, List, Optional

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


class InterfaceWatch:
    """The interface's last known index and state."""

    def __init__(self, sock: socket.socket, name: bytes, ifindex: int, log: Logger) -> None:
        self._sock = sock
        self._name = name
        self._shown = display_name(name)
        self.ifindex = ifindex
        self.state = UP
        self._limit = LogLimit(log, f"interface {self._shown} state")
        self.listeners: List[Callable[[int], None]] = []

    def check(self) -> bool:
        """Look at the interface's index and flags now and log what changed.
        True when it has a new index, after the listeners have been re-pointed at it."""
        ifindex, flags = netif.probe(self._sock, self._name) or (None, None)
        moved = ifindex is not None and ifindex != self.ifindex
        if moved:
            self._limit.log(INFO, "interface %s is back with index %d (was %d): re-pointing", self._shown,
                            ifindex, self.ifindex)
            self.ifindex = ifindex
            for listener in self.listeners:
                listener(ifindex)
        self._note(state_of(flags))
        return moved

    def check_state(self) -> None:
        """The once-a-second look: the flags alone (down, no carrier, gone)."""
        self._note(state_of(netif.flags_if_present(self._sock, self._name)))

    def _note(self, state: str) -> None:
        if state != self.state:
            if state == UP:
                self._limit.end(INFO, "interface %s %s", self._shown, state)
            else:
                self._limit.begin(WARNING, "interface %s %s", self._shown, state)
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

    def __init__(self, table, name: bytes, address: wire.IPAddress, log: Logger,
                 group: Optional[wire.IPAddress] = None) -> None:
        self._table = table
        self._name = name
        self._address = address
        self._key = table.key(address)
        self._group = group
        self._limit = LogLimit(log, f"source address {address}")
        self._usable = True

    def check(self) -> bool:
        """Look the address up now; log a change; return whether it is usable.
        SourceRenumbered when it is not and another one fits."""
        usable = self._table.usable(self._name, self._key)
        if usable != self._usable:
            self._usable = usable
            if usable:
                self._limit.end(INFO, "source address %s is usable again", self._address)
            else:
                self._limit.begin(WARNING, "source address %s is no longer usable on %s (removed, or "
                                  "duplicate address detection failed): not sending from it",
                                  self._address, display_name(self._name))
        if not usable and self._group is not None:
            self._look_for_another()
        return usable

    def _look_for_another(self) -> None:
        others = [address for address in fitting(self._group, self._table.addresses(self._name))
                  if address != self._address]
        if others:
            raise SourceRenumbered(f"source address {self._address} is gone from {display_name(self._name)} and "
                                   f"{others[0]} is usable there now (renumbered?): exiting, to start again from it")
