"""Follow the interface by name through flaps, deletion and re-creation.

The check is two ioctls on the transmit socket (index and flags), cheap
enough to run after every failed send and once a second, and still allowed
under the sandbox. It logs each change of state once and, when the name
comes back under a new index, tells the listeners (the transmit socket, the
reply socket) to re-point.
"""

from __future__ import annotations

import socket
import time

from mping_sender import netif, wire
from mping_sender.config import display_name
from mping_sender.log import INFO, WARNING
from mping_sender.ratelimit import LogLimit

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

    def _read(self):
        return netif.probe(self._sock, self._name) or (None, None)

    def check(self) -> bool:
        """Look at the interface now and log what changed. True when it has a
        new index, after the listeners have been re-pointed at it."""
        ifindex, flags = self._read()
        state = state_of(flags)
        moved = ifindex is not None and ifindex != self.ifindex
        if moved:
            self._limit.log(INFO, "interface %s is back with index %d (was %d): re-pointing", self._shown,
                            ifindex, self.ifindex)
            self.ifindex = ifindex
            for listener in self.listeners:
                listener(ifindex)
        if state != self.state:
            self._limit.log(INFO if state == UP else WARNING, "interface %s %s", self._shown, state)
            self.state = state
        return moved


class SourceWatch:
    """The bound IPv6 source address, looked up in the kernel's address
    table at most every CHECK_PERIOD seconds. Linux keeps sending from a
    bound IPv6 address that was removed or failed duplicate address
    detection, so the sender must notice by itself; while the address is not
    usable (gone, tentative, failed) the transmitter refuses to send, and
    the outage is counted and logged like any other."""

    CHECK_PERIOD = 0.1

    def __init__(self, table_fd: int, name: bytes, address: wire.IPAddress, log: Logger,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fd = table_fd
        self._name = name
        self._address = address
        self._key = netif.table_key(address)
        self._clock = clock
        self._limit = LogLimit(log, f"source address {address}")
        self._usable = True
        self._checked = -self.CHECK_PERIOD

    def __call__(self) -> bool:
        """True while the address is usable (read again when the last look is CHECK_PERIOD old)."""
        now = self._clock()
        if now - self._checked >= self.CHECK_PERIOD:
            self._checked = now
            usable = netif.listed_usable(netif.read_address_table(self._fd), self._name, self._key)
            if usable != self._usable:
                self._usable = usable
                if usable:
                    self._limit.log(INFO, "source address %s is usable again", self._address)
                else:
                    self._limit.log(WARNING, "source address %s is no longer usable on %s (removed, or "
                                    "duplicate address detection failed): not sending from it",
                                    self._address, display_name(self._name))
        return self._usable
