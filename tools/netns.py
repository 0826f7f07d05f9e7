"""A throwaway network world (for the tests and ``make demo``): two namespaces joined by a veth pair.

    sender namespace  [snd0] ===== veth ===== [rcv0]  receiver namespace
    10.<n>.0.1/24, fd00:<n>::1/64           10.<n>.0.2/24, fd00:<n>::2/64

Names carry the test process's PID and a counter, so parallel runs never
collide; ``close()`` kills every process started here and deletes both
namespaces (the veth goes with them), whether the test passed or not. A
host that cannot build them raises NetnsUnavailable, which names what is
missing, with nothing left behind.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import signal
import tempfile
import subprocess
import sys
import time
from typing import IO, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECEIVER = os.path.join(ROOT, "tools", "receiver.py")
REFLECTOR = os.path.join(ROOT, "tools", "reflector.py")
_serial = itertools.count(1)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class NetnsUnavailable(RuntimeError):
    """This host cannot build the pair. ``missing``: "rights" (no right to
    make network namespaces: not root, an unprivileged container, a user
    namespace), "veth" (the kernel makes no veth pair), "ip" (no iproute2),
    or "setup" (another step failed); the message says which step and why."""

    def __init__(self, missing: str, message: str) -> None:
        super().__init__(message)
        self.missing = missing


def _first_line(err: subprocess.CalledProcessError) -> str:
    lines = (err.stderr or "").strip().splitlines()
    return lines[0] if lines else f"exit status {err.returncode}"


class NetnsPair:
    """Two namespaces and a veth pair between them, with addresses of both families."""

    SENDER_IF = "snd0"
    RECEIVER_IF = "rcv0"

    def __init__(self, dad: bool = False) -> None:
        """dad: keep IPv6 duplicate address detection, which leaves every new
        address tentative (no multicast) for about two seconds; tests that
        are not about it turn it off, for every interface made later too."""
        self.dad = dad
        n = next(_serial)
        self.tag = f"mps{os.getpid()}x{n}"
        self.sender_ns = f"{self.tag}-s"
        self.receiver_ns = f"{self.tag}-r"
        net = 100 + (os.getpid() + n) % 150
        self.sender4 = ipaddress.ip_address(f"10.{net}.0.1")
        self.receiver4 = ipaddress.ip_address(f"10.{net}.0.2")
        self.sender6 = ipaddress.ip_address(f"fd00:{net:x}::1")
        self.receiver6 = ipaddress.ip_address(f"fd00:{net:x}::2")
        self._processes: List[subprocess.Popen] = []
        self._files: List[IO[str]] = []  # receivers' output, closed by close()
        try:
            self._build()
        except FileNotFoundError:
            self.close()
            raise NetnsUnavailable("ip", "the ip command is missing (Debian: apt-get install iproute2)") from None
        except subprocess.CalledProcessError as err:
            self.close()
            raise NetnsUnavailable("setup", f"{' '.join(err.cmd)}: {_first_line(err)}") from None
        except TimeoutError as err:
            self.close()
            raise NetnsUnavailable("setup", str(err)) from None
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for ns in (self.sender_ns, self.receiver_ns):
            try:
                ip("netns", "add", ns)
            except subprocess.CalledProcessError as err:
                raise NetnsUnavailable("rights", f"cannot make a network namespace (ip netns add: "
                                       f"{_first_line(err)})") from None
            if not self.dad:
                # default: interfaces made from now on, the veth ends included.
                # Where /proc/sys is read-only (a container) DAD stays on, and
                # wait_ipv6_ready waits the second or two it takes.
                subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                                "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad && "
                                "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad"], capture_output=True)
        # Different ifindexes on the two ends make the kernel treat the
        # carrier change as urgent: otherwise it is delayed by up to a second,
        # and IPv6 adds its multicast route only then.
        try:
            ip("link", "add", self.SENDER_IF, "index", "2", "netns", self.sender_ns, "type", "veth",
               "peer", "name", self.RECEIVER_IF, "index", "3", "netns", self.receiver_ns)
        except subprocess.CalledProcessError as err:
            raise NetnsUnavailable("veth", f"cannot make a veth pair (ip link add: {_first_line(err)})") from None
        for ns, ifname, v4, v6 in ((self.sender_ns, self.SENDER_IF, self.sender4, self.sender6),
                                   (self.receiver_ns, self.RECEIVER_IF, self.receiver4, self.receiver6)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", ifname)
            ip("-n", ns, "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
            ip("-n", ns, "link", "set", ifname, "up")
        self.wait_ipv6_ready()

    def wait_ipv6_ready(self, timeout: float = 10.0) -> None:
        """Wait until no address is tentative and every interface that is up
        has its IPv6 multicast route: until then IPv6 multicast is dropped
        (a tentative source; no route on the receiving side)."""
        deadline = time.monotonic() + timeout
        for ns in (self.sender_ns, self.receiver_ns):
            while not self._ipv6_ready(ns):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"IPv6 in {ns} not ready after {timeout} s")
                time.sleep(0.02)

    @staticmethod
    def _ipv6_ready(ns: str) -> bool:
        if ip("-n", ns, "-6", "addr", "show", "tentative").stdout.strip():
            return False
        up = {line.split(":")[1].strip().split("@")[0]
              for line in ip("-n", ns, "-o", "link", "show", "up").stdout.splitlines()}
        routes = ip("-n", ns, "-6", "route", "show", "table", "local", "ff00::/8").stdout.splitlines()
        routed = {words[words.index("dev") + 1] for words in map(str.split, routes) if "dev" in words}
        return up - {"lo"} <= routed

    def popen(self, ns: str, argv: List[str], **kwargs) -> subprocess.Popen:
        """Start a process inside a namespace; it is killed by close()."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)
        self._processes.append(proc)
        return proc

    def sender(self, *args: str, interface: str = SENDER_IF, env: Optional[Dict[str, str]] = None,
               python_options: Sequence[str] = (), **kwargs) -> subprocess.Popen:
        """The real program, run as ``python3 [python_options] -m mping_sender`` in the sender namespace."""
        full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
        return self.popen(self.sender_ns, [sys.executable, *python_options, "-m", "mping_sender",
                                           "--interface-name", interface, *args], env=full_env, **kwargs)

    def receiver(self, group: str, *, count: int = 0, timeout: float = 5.0, port: int = 4321,
                 as_json: bool = True, **kwargs) -> subprocess.Popen:
        """tools/receiver.py in the receiver namespace; returns once it has joined."""
        argv = [sys.executable, RECEIVER, "--interface", self.RECEIVER_IF, "--group", group,
                "--port", str(port), "--count", str(count), "--timeout", str(timeout)]
        output = None
        if as_json:
            # A file, not a pipe: a pipe nobody reads until the end fills up
            # after a few hundred datagrams and stalls the receiver.
            output = kwargs["stdout"] = tempfile.TemporaryFile("w+")
            self._files.append(output)
            argv.append("--json")
        proc = self.popen(self.receiver_ns, argv, **kwargs)
        proc.output = output  # type: ignore[attr-defined]
        return _started(proc, "receiver")

    def reflector(self, group: str, *args: str, source: Optional[str] = None, port: int = 4321,
                  **kwargs) -> subprocess.Popen:
        """tools/reflector.py in the receiver namespace (replies come from ``source``,
        by default the receiver's address of the group's family); returns once it has joined."""
        if source is None:
            source = str(self.receiver4 if ipaddress.ip_address(group).version == 4 else self.receiver6)
        argv = [sys.executable, REFLECTOR, "--interface", self.RECEIVER_IF, "--group", group,
                "--source", source, "--port", str(port), *args]
        return _started(self.popen(self.receiver_ns, argv, **kwargs), "reflector")

    def ip(self, ns: str, *args: str) -> subprocess.CompletedProcess:
        return ip("-n", ns, *args)

    def close(self) -> None:
        for proc in self._processes:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                pass
        for output in self._files:
            output.close()
        for ns in (self.sender_ns, self.receiver_ns):
            try:
                ip("netns", "del", ns, check=False)
            except FileNotFoundError:  # no ip command: nothing was made
                pass


def _started(proc: subprocess.Popen, what: str) -> subprocess.Popen:
    """Wait for the ``ready`` line a helper prints on stderr once it has joined the group."""
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.strip() == "ready", f"{what} did not start: {line}{proc.stderr.read()}"
    return proc


def received(proc: subprocess.Popen, timeout: float = 30.0, sender_done: bool = False) -> List[dict]:
    """Wait for a receiver to finish and return the datagrams it decoded.
    sender_done: the sender has exited, so the receiver is told to take what
    is queued and stop, instead of waiting out its silence timeout."""
    if sender_done:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    proc.output.seek(0)
    return [json.loads(line) for line in proc.output.read().splitlines() if line.strip()]


def stop(proc: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 5.0):
    """Signal a process and return (exit code, stdout, stderr, seconds to exit)."""
    started = time.monotonic()
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err, time.monotonic() - started
