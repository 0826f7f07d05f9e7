"""A Debian system booted with systemd as PID 1 (systemd-nspawn), inside a
network namespace of the test's own, from a throwaway overlay on the cached
root file system of its release (tools/rootfs.py). Commands run inside with
nsenter.

nspawn's own seccomp filter refuses bpf() and the Landlock calls unless they
are named: without them systemd's BPF features (IPAddressDeny=, device
policy) are silently off and the program reports Landlock unavailable. The
tests check both are really in force inside.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ALLOWED_CALLS = "bpf landlock_create_ruleset landlock_add_rule landlock_restrict_self"


class Machine:
    """One booted container; close() powers it off and removes its overlay."""

    def __init__(self, root: Path, netns: str, name: str, binds: Dict[str, str], log: Path) -> None:
        argv = ["systemd-nspawn", "--quiet", "-D", str(root), "--volatile=overlay", "--boot", "--register=no",
                "--keep-unit", "-M", name, f"--network-namespace-path=/run/netns/{netns}", "--capability=all",
                f"--system-call-filter={ALLOWED_CALLS}"]
        argv += [f"--bind-ro={host}:{guest}" for host, guest in binds.items()]
        self._log = log.open("wb")
        self._nspawn = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1"))
        self.log_path = log
        self.boot_seconds = 0.0
        try:
            self._leader = self._find_leader()
            self._wait_booted()
        except BaseException:
            self.close()
            raise

    def _find_leader(self, timeout: float = 30.0) -> int:
        """The container's PID 1, as the host sees it: nspawn's child."""
        deadline = time.monotonic() + timeout
        children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self._nspawn.returncode}: {self.log_path.read_text()}")
            found = children.read_text().split() if children.exists() else []
            if found:
                return int(found[0])
            time.sleep(0.05)
        raise TimeoutError("systemd-nspawn started no container")

    def _wait_booted(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            state = self.run("systemctl is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                self.boot_seconds = time.monotonic() - started
                return
            time.sleep(0.2)
        jobs = self.run("systemctl list-jobs --no-pager", check=False).stdout
        raise TimeoutError(f"the container did not finish booting ({state}); jobs:\n{jobs}")

    def run(self, command: str, check: bool = True, timeout: float = 120.0,
            stdin: Optional[str] = None) -> subprocess.CompletedProcess:
        """A shell command inside the container (all its namespaces, its root)."""
        argv = ["nsenter", "-t", str(self._leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w",
                "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "/bin/sh", "-c", command]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=stdin)
        if check and result.returncode != 0:
            raise AssertionError(f"{command!r} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def write(self, path: str, text: str) -> None:
        self.run(f"mkdir -p {shlex.quote(os.path.dirname(path))} && cat > {shlex.quote(path)}", stdin=text)

    def show(self, unit: str, *properties: str) -> Dict[str, str]:
        """systemctl show, as a dict."""
        out = self.run(f"systemctl show {shlex.quote(unit)} " + " ".join(f"-p {p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_for(self, what: str, predicate, timeout: float = 60.0, period: float = 0.2):
        """Poll predicate() until it returns something true; that value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(period)
        raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")

    def journal(self, unit: str, since_cursor: Optional[str] = None) -> List[dict]:
        """The unit's journal entries (JSON), optionally after a cursor."""
        after = f" --after-cursor={shlex.quote(since_cursor)}" if since_cursor else ""
        out = self.run(f"journalctl --no-pager -o json -u {shlex.quote(unit)}{after}").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def cursor(self) -> str:
        """The journal's newest cursor, to read only what comes after it."""
        out = self.run("journalctl --no-pager -o json -n 1").stdout.strip().splitlines()
        return json.loads(out[-1])["__CURSOR"] if out else ""

    def main_pid(self, unit: str) -> int:
        return int(self.show(unit, "MainPID")["MainPID"])

    def proc_status(self, pid: int) -> Dict[str, str]:
        text = self.run(f"cat /proc/{pid}/status").stdout
        return {key: value.strip() for key, value in (line.split(":", 1) for line in text.splitlines())}

    def close(self) -> None:
        if self._nspawn.poll() is None:
            self._nspawn.terminate()  # SIGTERM: nspawn asks the container's systemd to power off
            try:
                self._nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._nspawn.kill()
                self._nspawn.wait()
        self._log.close()


def messages(entries: Sequence[dict]) -> List[str]:
    """The MESSAGE fields of journal entries (journald stores non-UTF-8 as a byte list)."""
    return [e["MESSAGE"] if isinstance(e.get("MESSAGE"), str) else bytes(e.get("MESSAGE") or []).decode("replace")
            for e in entries]
