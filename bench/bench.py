#!/usr/bin/env python3
"""`make bench`: how well mping-sender keeps time and what it costs.

Runs the real program in a namespace pair against a timestamping receiver
(tools/receiver.py) and prints a table: schedule accuracy at 10 ms and 1 s
against a naive sleep-after-send baseline measured in the same run, start-up
time to the first datagram and to READY, peak RSS, CPU per 1,000 datagrams,
and the highest rate it sustains. Needs root. Not a test: it prints figures.

Lateness of datagram k is its send timestamp (CLOCK_MONOTONIC, written in the
datagram just before sendto) minus its ideal time t0 + k * interval, with t0
the timestamp of datagram 0. Drift is the lateness of the last datagram.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
from netns import NetnsPair, received  # noqa: E402

NAIVE = os.path.join(HERE, "naive_sender.py")
GROUP = "ff2e::42"
LATE = 0.0005  # a datagram more than 0.5 ms behind its slot counts as late


@dataclass
class Run:
    """One sender run as the receiver saw it, plus the process's own costs."""

    stamps: List[float]  # send timestamps from the datagrams, seconds
    arrivals: List[float]  # receiver's CLOCK_MONOTONIC at reception
    started: float  # CLOCK_MONOTONIC just before the process was started
    ready: Optional[float]  # when READY=1 arrived on the notify socket
    cpu: float  # user + system seconds of the sender process (tick-sampled by the kernel)
    max_rss_kib: int
    interval: float
    runtime: List[Tuple[float, int]]  # (time, ns on CPU) from /proc/PID/schedstat while it ran
    skips: Dict[int, int]  # sequence number -> slots skipped just before it (from the sender's log)

    def steady_cpu_per_datagram(self) -> float:
        """CPU seconds per datagram once started: the scheduler's exact runtime
        (schedstat) between a reading one second in and the last one."""
        start = next((t, ns) for t, ns in self.runtime if t >= self.started + 1.0)
        end = self.runtime[-1]
        return (end[1] - start[1]) / 1e9 / ((end[0] - start[0]) / self.interval)

    def lateness(self) -> List[float]:
        """Each datagram against its own slot (the sequence stays contiguous
        when slots are skipped, so the log says which slot each one had)."""
        t0, slot, late = self.stamps[0], 0, []
        for sequence, stamp in enumerate(self.stamps):
            slot += self.skips.get(sequence, 0)
            late.append(stamp - (t0 + slot * self.interval))
            slot += 1
        return late


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_sender(pair: NetnsPair, interval: float, count: int, naive: bool = False) -> Run:
    receiver = pair.receiver(GROUP, count=count, timeout=max(5.0, 3 * interval))
    log = tempfile.TemporaryFile("w+")
    with tempfile.TemporaryDirectory() as scratch:
        notify_path = os.path.join(scratch, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.setblocking(False)
        if naive:
            argv = [sys.executable, NAIVE, pair.SENDER_IF, GROUP, str(interval), str(count)]
            started = time.monotonic()
            proc = pair.popen(pair.sender_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            started = time.monotonic()
            proc = pair.sender("--address", GROUP, "--interval", str(interval), "--count", str(count),
                               "--log-level", "warning", env={"NOTIFY_SOCKET": notify_path},
                               stdout=subprocess.DEVNULL, stderr=log)
        ready = None
        runtime = []
        while True:
            try:
                with open(f"/proc/{proc.pid}/schedstat") as f:
                    runtime.append((time.monotonic(), int(f.read().split()[0])))
            except (OSError, ValueError, IndexError):
                pass
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if ready is None:
                try:
                    if b"READY=1" in notify.recv(4096).split(b"\n"):
                        ready = time.monotonic()
                except BlockingIOError:
                    pass
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.0005 if ready is None else 0.1)
        notify.close()
    datagrams = received(receiver)
    log.seek(0)
    skips = {int(seq): int(n) for n, seq in re.findall(r"skipped (\d+) slot\(s\) before seq=(\d+)", log.read())}
    if proc.returncode != 0 or len(datagrams) != count:
        raise SystemExit(f"bench: sender exited {proc.returncode}, receiver got {len(datagrams)} of {count}")
    return Run(stamps=[d["seconds"] + d["microseconds"] / 1e6 for d in datagrams],
               arrivals=[d["arrival"] for d in datagrams], started=started, ready=ready,
               cpu=usage.ru_utime + usage.ru_stime, max_rss_kib=usage.ru_maxrss, interval=interval,
               runtime=runtime, skips=skips)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f}"


def accuracy_rows(label: str, run: Run) -> str:
    late = run.lateness()
    after_1000 = ms(late[999]) if len(late) >= 1000 else "     n/a"  # the 1,000th datagram
    return (f"| {label:<28} | {len(late):>5} | {sum(run.skips.values())} | {ms(late[-1])} | {after_1000} | "
            f"{ms(statistics.median(late))} | {ms(percentile(late, 0.99))} | {ms(max(late))} |")


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return (f"{os.cpu_count()} CPUs ({model}), {mem_kib / 2**20:.0f} GiB, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", action="store_true", help="1,000 datagrams at the 1 s interval (17 minutes)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("make bench: needs root for network namespaces (sudo make bench)", file=sys.stderr)
        return 77
    slow_count = 1000 if args.long else 60
    print(f"machine: {machine()}")
    pair = NetnsPair()
    try:
        rows = ["| schedule | datagrams | skipped slots | drift at end ms | drift after 1000 ms | median late ms | "
                "p99 late ms | max late ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        fast = run_sender(pair, 0.01, 2000)
        naive = run_sender(pair, 0.01, 2000, naive=True)
        rows.append(accuracy_rows("mping-sender, 10 ms", fast))
        rows.append(accuracy_rows("naive sleep loop, 10 ms", naive))
        print(f"(1 s interval: {slow_count} datagrams each, run one after the other)", flush=True)
        rows.append(accuracy_rows("mping-sender, 1 s", run_sender(pair, 1.0, slow_count)))
        rows.append(accuracy_rows("naive sleep loop, 1 s", run_sender(pair, 1.0, slow_count, naive=True)))
        print("\n".join(rows))

        starts = [run_sender(pair, 1.0, 1) for _ in range(5)]
        first = statistics.median(run.arrivals[0] - run.started for run in starts)
        readies = [run.ready - run.started for run in starts if run.ready is not None]
        ready = f"{statistics.median(readies) * 1000:.1f} ms" if readies else "n/a (no READY=1 received)"
        startup_cpu = statistics.median(run.cpu for run in starts)
        per_1000 = fast.steady_cpu_per_datagram() * 1000
        print()
        print("| cost | value |\n|---|---:|")
        print(f"| exec to first datagram on the wire (median of 5) | {first * 1000:.1f} ms |")
        print(f"| exec to READY=1, sandbox applied (median of 5) | {ready} |")
        print(f"| peak RSS (2,000 datagrams at 10 ms) | {fast.max_rss_kib / 1024:.1f} MiB |")
        print(f"| CPU per 1,000 datagrams at 10 ms, steady state (schedstat) | {per_1000:.3f} s |")
        print(f"| the same for the naive sleep loop (no replies, no sandbox) | "
              f"{naive.steady_cpu_per_datagram() * 1000:.3f} s |")
        print(f"| CPU of start-up and exit, one datagram | {startup_cpu:.3f} s |")

        print()
        print("| interval | datagrams | skipped slots | rate /s | late > 0.5 ms or skipped | p99 late ms | CPU s / 1,000 |\n"
              "|---:|---:|---:|---:|---:|---:|---:|")
        smallest = None
        for interval in (0.001, 0.002, 0.005, 0.01):
            run = run_sender(pair, interval, 3000 if interval == 0.001 else int(3 / interval))
            late = run.lateness()
            skipped = sum(run.skips.values())  # a skipped slot is a datagram that was late by a whole period
            share = (sum(1 for value in late if value > LATE) + skipped) / (len(late) + skipped)
            rate = (len(late) - 1) / (run.stamps[-1] - run.stamps[0])
            print(f"| {interval * 1000:g} ms | {len(late)} | {skipped} | {rate:.0f} | {share:.2%} | "
                  f"{ms(percentile(late, 0.99))} | {run.steady_cpu_per_datagram() * 1000:.3f} |")
            if smallest is None and share < 0.01:
                smallest = interval
        print(f"\nsmallest interval kept with under 1% late datagrams: "
              f"{'none tried' if smallest is None else f'{smallest * 1000:g} ms'}")
    finally:
        pair.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
