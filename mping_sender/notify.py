"""systemd's notify protocol (sd_notify), pure standard library.

The socket is opened and connected before the sandbox is applied: after it,
no path can be resolved and no socket created, but send() on a connected
datagram socket still works. Without NOTIFY_SOCKET nothing is opened or sent.
"""

from __future__ import annotations

import os
import socket

from mping_sender.eventloop import EventLoop
from mping_sender.sender import Counters

TYPE_CHECKING = False  # typing is for the checker only: see CONTRIBUTING
if TYPE_CHECKING:
    from typing import Mapping, Optional

    from mping_sender.log import Logger

STATUS_PERIOD = 5.0  # seconds: how fresh `systemctl status` shows the counters
MIN_WATCHDOG_PERIOD = 0.01  # seconds: a tinier WATCHDOG_USEC (1) would make the loop spin


def socket_address(value: str) -> Optional[str]:
    """NOTIFY_SOCKET as an AF_UNIX address: '@name' is abstract ('\\0name'),
    '/path' a file; anything else (e.g. vsock:) is not supported here."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_period(environ: Mapping[str, str], pid: int) -> Optional[float]:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC, as systemd
    advises, but not below MIN_WATCHDOG_PERIOD), or None when no watchdog is
    asked of this process."""
    owner = environ.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return max(usec / 2e6, MIN_WATCHDOG_PERIOD) if usec > 0 else None


def status(counters: Counters) -> str:
    """The one-line STATUS= text that `systemctl status` shows."""
    return f"STATUS=sent {counters.sent}, failed {counters.failed}"


class Notifier:
    """A connected, non-blocking AF_UNIX datagram socket to systemd."""

    def __init__(self, address: str, watchdog: Optional[float], log: Logger) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.connect(address)
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        self._watchdog = watchdog
        self._log = log
        self._failed = False

    def send(self, message: str) -> None:
        """Send one message; a failure is logged once and survived (systemd
        may be restarting; the sender must go on)."""
        try:
            self._sock.send(message.encode())
        except OSError as err:
            if not self._failed:
                self._log.warning("systemd notification failed: %s; later failures are not logged", err.strerror)
            self._failed = True

    def ready(self, loop: EventLoop, counters: Counters) -> None:
        """READY=1 (once the sandbox is on), then from the loop STATUS= every
        STATUS_PERIOD and WATCHDOG=1 (in the same message) when asked for."""
        self.send(f"READY=1\n{status(counters)}")
        period = min(self._watchdog or STATUS_PERIOD, STATUS_PERIOD)
        ping = "WATCHDOG=1\n" if self._watchdog is not None else ""
        loop.add_timer(period, lambda now: self.send(f"{ping}{status(counters)}"))

    def stopping(self, counters: Counters) -> None:
        self.send(f"STOPPING=1\n{status(counters)}")

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()


def from_environment(environ: Mapping[str, str], log: Logger) -> Optional[Notifier]:
    """A Notifier when systemd asked for notifications, else None."""
    value = environ.get("NOTIFY_SOCKET")
    if not value:
        return None
    address = socket_address(value)
    if address is None:
        log.warning("NOTIFY_SOCKET=%s is not a UNIX socket address; not notifying systemd", value)
        return None
    watchdog = watchdog_period(environ, os.getpid())
    if watchdog == MIN_WATCHDOG_PERIOD:
        log.warning("WATCHDOG_USEC=%s: pinging the watchdog every %g s, no more often",
                    environ.get("WATCHDOG_USEC"), MIN_WATCHDOG_PERIOD)
    try:
        return Notifier(address, watchdog, log)
    except OSError as err:
        log.warning("cannot connect to NOTIFY_SOCKET %s: %s; not notifying systemd", value, err.strerror)
        return None
