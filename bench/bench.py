#!/usr/bin/env python3
"""`make bench`: how well mping-sender keeps time and what it costs, each
figure beside the naive sleep-after-send loop (bench/naive_sender.py) run in
the same invocation, as ratios where a goal is set in them (bench/RESULTS.md).

Runs the real program in a namespace pair against a timestamping receiver
(tools/receiver.py): schedule accuracy at 10 ms and 1 s (goal 6); CPU per
datagram at 1 s with the naive loop and the floor loop (bench/floor_sender.py:
mping-sender's wait and nothing else) running at the same time (goal 2); lateness against the original grid under two busy loops, and
the same under SCHED_FIFO priority 1 through chrt (goals 1 and 5); lateness
with the metrics endpoint off, on, and under a scrape flood; exec to
the first datagram for `python3 -m mping_sender`, the launcher and the naive
loop, interleaved, from source and from .pyc files, with the peak RSS beside
the bare interpreter's (goals 3 and 4); the highest rate kept (goal 6); the
loop's system calls under strace, one wake-up per datagram (goal 2).
Needs root. Not a test: it prints figures. The machine's noise is not
removed: run it more than once and compare ratios, not absolute figures.

Lateness of datagram k is its send timestamp (CLOCK_MONOTONIC, written in the
datagram just before sendto) minus its ideal time t0 + slot * interval, with
the slot counted with the skips the sender logs and t0 the origin of the
grid through the most punctual datagram (usually datagram 0; under
contention datagram 0 may be late itself). Drift is the lateness of the
last datagram.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
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
from netns import NetnsPair, NetnsUnavailable, received  # noqa: E402

NAIVE = os.path.join(HERE, "naive_sender.py")
FLOOR = os.path.join(HERE, "floor_sender.py")
SCRAPER = os.path.join(HERE, "..", "tools", "scraper.py")
GROUP = "ff2e::42"
GROUP4 = "239.255.42.42"  # for the IPv4 row of the CPU figure
LATE = 0.0005  # a datagram more than 0.5 ms behind its slot counts as late


@dataclass
class Run:
    """One sender run as the receiver saw it, plus the process's own costs."""

    stamps: List[float]  # send timestamps from the datagrams, seconds
    arrivals: List[float]  # receiver's CLOCK_MONOTONIC at reception
    started: float  # CLOCK_MONOTONIC just before the process was started
    ready: Optional[float]  # when READY=1 arrived on the notify socket
    cpu: float  # user + system seconds of the sender process (tick-sampled by the kernel)
    max_rss_kib: int  # VmHWM, the last reading before exit (ru_maxrss would count `ip netns exec` before its exec)
    interval: float
    runtime: List[Tuple[float, int]]  # (time, ns on CPU) from /proc/PID/schedstat while it ran
    skips: Dict[int, int]  # sequence number -> slots skipped just before it (from the sender's log)
    sequences: List[int]

    def steady_cpu_per_datagram(self) -> float:
        """CPU seconds per datagram once started: the scheduler's exact runtime
        (schedstat) between a reading one second in and the last one."""
        start = next((t, ns) for t, ns in self.runtime if t >= self.started + 1.0)
        end = self.runtime[-1]
        return (end[1] - start[1]) / 1e9 / ((end[0] - start[0]) / self.interval)

    def lateness(self) -> List[float]:
        """Each datagram against its own slot (the sequence stays contiguous
        when slots are skipped, so the log says which slot each one had), on
        the grid through the most punctual datagram: datagram 0 can be late
        too (under contention), and must not make every other one look early."""
        slots, slot = [], 0
        for sequence in range(len(self.stamps)):
            slot += self.skips.get(sequence, 0)
            slots.append(slot)
            slot += 1
        t0 = min(stamp - slot * self.interval for stamp, slot in zip(self.stamps, slots))
        return [stamp - (t0 + slot * self.interval) for stamp, slot in zip(self.stamps, slots)]


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Program:
    """How to start one sender: its argv before the options, and its environment."""

    label: str
    argv: List[str]
    env: Dict[str, str]
    naive: bool = False
    bare_flags: Tuple[str, ...] = ()  # the interpreter flags it runs with, for the bare interpreter's RSS
    # Where it runs: `python3 -m` puts the working directory first on sys.path,
    # so from the repository it would import the tree's package, not the copy.
    cwd: Optional[str] = None

    def command(self, interface: str, interval: float, count: int) -> List[str]:
        if self.naive:
            return [*self.argv, interface, GROUP, str(interval), str(count)]
        return [*self.argv, "--interface-name", interface, "--address", GROUP, "--interval", str(interval),
                "--count", str(count), "--log-level", "warning"]


def programs(lib: str, compiled: bool) -> Dict[str, Program]:
    """The ways to start a sender, all from the copy of the tree in ``lib``:
    ``python3 -m mping_sender``, the launcher as `make install` writes it,
    the naive loop and the floor loop. -I ignores PYTHONDONTWRITEBYTECODE, so the launcher
    of an uncompiled copy gets -B, or its first run would compile it."""
    launcher = os.path.join(lib, "mping-sender")
    with open(os.path.join(HERE, "..", "bin", "mping-sender.in")) as f:
        text = f.read().replace("@LIBDIR@", lib)
    with open(launcher, "w") as f:  # the same interpreter as the rest of the run, and -S as the installed launcher
        f.write(re.sub(r"^#!.*", f"#!{sys.executable} -IS{'' if compiled else 'B'}", text, count=1))
    os.chmod(launcher, 0o755)
    env = dict(os.environ, PYTHONPATH=lib, PYTHONDONTWRITEBYTECODE="1")  # the source copy stays without .pyc
    return {"module": Program("python3 -m mping_sender", [sys.executable, "-m", "mping_sender"], env, cwd=lib),
            "launcher": Program("launcher (-IS)", [launcher], env, bare_flags=("-IS",), cwd=lib),
            "naive": Program("naive sleep loop", [sys.executable, os.path.join(lib, "bench", "naive_sender.py")],
                             env, naive=True, cwd=lib),
            "floor": Program("floor loop", [sys.executable, os.path.join(lib, "bench", "floor_sender.py")],
                             env, naive=True, cwd=lib)}


def copy_tree(scratch: str, compiled: bool) -> str:
    """The package and the baseline loops copied to ``scratch``, with or without
    .pyc files (PYTHONDONTWRITEBYTECODE=1 keeps runs from writing any)."""
    lib = os.path.join(scratch, "pyc" if compiled else "source")
    shutil.copytree(os.path.join(HERE, "..", "mping_sender"), os.path.join(lib, "mping_sender"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.join(lib, "bench"))
    shutil.copy(NAIVE, os.path.join(lib, "bench"))
    shutil.copy(FLOOR, os.path.join(lib, "bench"))
    if compiled:
        compileall.compile_dir(lib, quiet=1)
    return lib


def busy_loops(count: int = 2) -> List[subprocess.Popen]:
    """CPU hogs at the sender's own priority: with two, both cores are busy."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def run_sender(pair: NetnsPair, program: Program, interval: float, count: int, prefix: Tuple[str, ...] = (),
               options: Tuple[str, ...] = ()) -> Run:
    receiver = pair.receiver(GROUP, count=count, timeout=max(5.0, 3 * interval))
    log = tempfile.TemporaryFile("w+")
    with tempfile.TemporaryDirectory() as scratch:
        notify_path = os.path.join(scratch, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.setblocking(False)
        env = dict(program.env, NOTIFY_SOCKET=notify_path)
        started = time.monotonic()
        proc = pair.popen(pair.sender_ns, [*prefix, *program.command(pair.SENDER_IF, interval, count), *options], env=env,
                          cwd=program.cwd, stdout=subprocess.DEVNULL, stderr=log)
        ready = None
        runtime = []
        hwm_kib = 0
        while True:
            try:
                with open(f"/proc/{proc.pid}/schedstat") as f:
                    runtime.append((time.monotonic(), int(f.read().split()[0])))
                hwm_kib = vm_hwm_kib(proc.pid) or hwm_kib
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
    stderr = log.read()
    skips: Dict[int, int] = {}  # a sequence number can follow more than one skip (a stall during the catch-up wait)
    for n, seq in re.findall(r"skipped (\d+) slot\(s\) before seq=(\d+)", stderr):
        skips[int(seq)] = skips.get(int(seq), 0) + int(n)
    if proc.returncode != 0 or len(datagrams) != count:
        raise SystemExit(f"bench: {program.label} exited {proc.returncode}, receiver got {len(datagrams)} of "
                         f"{count}; its stderr:\n{stderr}")
    return Run(stamps=[d["seconds"] + d["microseconds"] / 1e6 for d in datagrams],
               arrivals=[d["arrival"] for d in datagrams], started=started, ready=ready,
               cpu=usage.ru_utime + usage.ru_stime, max_rss_kib=hwm_kib, interval=interval,
               runtime=runtime, skips=skips, sequences=[d["sequence"] for d in datagrams])


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


def vm_hwm_kib(pid: int) -> int:
    """Peak RSS of a running process's current image (VmHWM; 0 when not there)."""
    with open(f"/proc/{pid}/status") as f:
        return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)


def bare_rss_kib(pair: NetnsPair, flags: Tuple[str, ...]) -> int:
    """Peak RSS of the bare interpreter with these flags, read once it has
    started, which it says on stdout; started the same way as the senders."""
    code = "import os; os.write(1, b'.'); os.read(0, 1)"
    proc = pair.popen(pair.sender_ns, [sys.executable, *flags, "-c", code], stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=False)
    proc.stdout.read(1)
    hwm = vm_hwm_kib(proc.pid)
    proc.communicate(b".")
    return hwm


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}" if baseline else "n/a"


def accuracy(pair: NetnsPair, progs: Dict[str, Program], slow_count: int) -> Run:
    """Goal 6: drift and lateness at 10 ms and 1 s, and the CPU they cost."""
    rows = ["| schedule | datagrams | skipped slots | drift at end ms | drift after 1000 ms | median late ms | "
            "p99 late ms | max late ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    fast = run_sender(pair, progs["module"], 0.01, 2000)
    naive_fast = run_sender(pair, progs["naive"], 0.01, 2000)
    rows.append(accuracy_rows("mping-sender, 10 ms", fast))
    rows.append(accuracy_rows("naive sleep loop, 10 ms", naive_fast))
    print(f"(1 s interval: {slow_count} datagrams each, run one after the other)", flush=True)
    slow = run_sender(pair, progs["module"], 1.0, slow_count)
    naive_slow = run_sender(pair, progs["naive"], 1.0, slow_count)
    rows.append(accuracy_rows("mping-sender, 1 s", slow))
    rows.append(accuracy_rows("naive sleep loop, 1 s", naive_slow))
    print("\n".join(rows))
    print()
    print("| CPU per 1,000 datagrams, steady state (schedstat) | mping-sender s | naive loop s | ratio |\n"
          "|---|---:|---:|---:|")
    for label, ours, theirs in (("1 s interval, one after the other", slow, naive_slow),
                                ("10 ms interval, one after the other", fast, naive_fast)):
        mine, base = ours.steady_cpu_per_datagram() * 1000, theirs.steady_cpu_per_datagram() * 1000
        print(f"| {label} | {mine:.3f} | {base:.3f} | {ratio(mine, base)} |")
    return fast


def cpu(pair: NetnsPair, progs: Dict[str, Program], count: int) -> None:
    """Goal 2: CPU per datagram at 1 s, the senders running at once."""
    per = {key: 1000 * value for key, value in paired_cpu(pair, progs, 1.0, count).items()}
    print(f"\nCPU per 1,000 datagrams at 1 s, mping-sender (IPv6 group, as everywhere else here, and an IPv4 "
          f"group: no source-address look), the naive loop and the floor loop (bench/floor_sender.py: the same "
          f"wait, nothing else) running at once, their wake-ups spread over the second, {count} datagrams")
    print("| sender | CPU s / 1,000 | ratio to naive | ratio to floor |\n|---|---:|---:|---:|")
    for key, label in (("module", "mping-sender (goal 2: ratio to naive <= 1.2)"),
                       ("module4", "mping-sender, IPv4 group"), ("floor", "floor loop"),
                       ("naive", "naive sleep loop")):
        print(f"| {label} | {per[key]:.3f} | {ratio(per[key], per['naive'])} | {ratio(per[key], per['floor'])} |")


def paired_cpu(pair: NetnsPair, progs: Dict[str, Program], interval: float, count: int) -> Dict[str, float]:
    """Goal 2 without the noise between runs: ours, the naive loop and the
    floor loop at the same time (no receiver needed), CPU per datagram of
    each from schedstat, read from two seconds in until the first one ends.
    Their starts are spread over one interval, so that no two wake together:
    woken together on the two CPUs, each would find the other's work in the
    shared caches or fight it for them, and the ratios swung from 0.8 to 1.8
    between runs; spread, they hold within a few percent."""
    # Ours on ports of their own (the naive loop sends to 4321, the floor loop
    # to 4323): on theirs, its reply socket would get every one of their
    # datagrams through the multicast loopback, a wake-up each.
    ours = progs["module"].command(pair.SENDER_IF, interval, count)
    runs = {"module": (progs["module"], ours + ["--port", "4322"]),
            "module4": (progs["module"], [GROUP4 if arg == GROUP else arg for arg in ours] + ["--port", "4324"]),
            "naive": (progs["naive"], progs["naive"].command(pair.SENDER_IF, interval, count)),
            "floor": (progs["floor"], progs["floor"].command(pair.SENDER_IF, interval, count))}
    procs = {}
    for key, (program, argv) in runs.items():
        procs[key] = pair.popen(pair.sender_ns, argv, env=program.env, cwd=program.cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(interval / len(runs))
    started, samples = time.monotonic(), []
    try:
        while all(proc.poll() is None for proc in procs.values()):
            try:
                reading = {}
                for key, proc in procs.items():
                    with open(f"/proc/{proc.pid}/schedstat") as f:
                        reading[key] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                break
            if time.monotonic() >= started + 2.0:
                samples.append((time.monotonic(), reading))
            time.sleep(0.25)
    finally:
        for proc in procs.values():
            proc.wait()
    (t1, first), (t2, last) = samples[0], samples[-1]
    return {key: (last[key] - first[key]) / 1e9 / ((t2 - t1) / interval) for key in procs}


def contention(pair: NetnsPair, progs: Dict[str, Program], count: int) -> None:
    """Goals 1 and 5: two busy loops at the sender's priority, 10 ms interval;
    lateness against the original grid; then the same under SCHED_FIFO 1."""
    print(f"\ncontention: two busy loops, 10 ms interval, {count} datagrams each; lateness against the "
          "original grid (slots skipped counted from the log)")
    print("| sender | skipped slots | contiguous | median late, last tenth ms | median late ms | p99 late ms | "
          "max late ms |\n|---|---:|---|---:|---:|---:|---:|")
    cases = (("mping-sender", progs["module"], ()),
             ("naive sleep loop", progs["naive"], ()),
             ("mping-sender, chrt -f 1 (SCHED_FIFO 1)", progs["module"], ("chrt", "-f", "1")))
    for label, program, prefix in cases:
        hogs = busy_loops()
        try:
            run = run_sender(pair, program, 0.01, count, prefix)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        late = run.lateness()
        tail = late[-max(1, len(late) // 10):]
        contiguous = run.sequences == list(range(len(run.sequences)))
        print(f"| {label} | {sum(run.skips.values())} | {'yes' if contiguous else 'NO'} | "
              f"{ms(statistics.median(tail))} | {ms(statistics.median(late))} | {ms(percentile(late, 0.99))} | "
              f"{ms(max(late))} |", flush=True)


def metrics(pair: NetnsPair, program: Program, count: int) -> None:
    """The metrics endpoint: lateness at 10 ms with --metrics-listen off, on
    and not scraped, and on under a scrape flood (up to 100 a second, and a
    client that never reads) from the receiver's namespace."""
    print(f"\nmetrics endpoint: 10 ms interval, {count} datagrams each; the flood: a client that never reads, "
          "then scrapes at up to 100 a second")
    print("| --metrics-listen | skipped slots | median late ms | p99 late ms | max late ms | scrapes answered |\n"
          "|---|---:|---:|---:|---:|---:|")
    listen = ("--metrics-listen", f"[{pair.sender6}]:9810")
    for label, options, flood in (("off", (), False), ("on, not scraped", listen, False),
                                  ("on, scrape flood", listen, True)):
        client = None
        if flood:
            client = pair.popen(pair.receiver_ns, [sys.executable, SCRAPER, "flood", str(pair.sender6), "9810",
                                                   "--flood-seconds", str(count * 0.01 * 0.8)])
        run = run_sender(pair, program, 0.01, count, options=options)
        answered = "n/a"
        if client is not None:
            out, _ = client.communicate(timeout=60)
            answered = str(json.loads(out)["answered"]) if client.returncode == 0 else "client failed"
        late = run.lateness()
        print(f"| {label} | {sum(run.skips.values())} | {ms(statistics.median(late))} | "
              f"{ms(percentile(late, 0.99))} | {ms(max(late))} | {answered} |", flush=True)


def startup(pair: NetnsPair, scratch: str, rounds: int) -> None:
    """Goal 3: exec to the first datagram, each program in turn, round after
    round, from source and from .pyc files; goal 4 from the same runs."""
    print(f"\nstart-up: exec to first datagram on the wire, median of {rounds} interleaved rounds")
    print("| .pyc files | program | first datagram ms | ratio to naive | READY=1 ms | peak RSS MiB | "
          "minus bare interpreter MiB |\n|---|---|---:|---:|---:|---:|---:|")
    bare = {flags: statistics.median(bare_rss_kib(pair, flags) for _ in range(3)) for flags in ((), ("-IS",))}
    for compiled in (False, True):
        progs = {key: program for key, program in programs(copy_tree(scratch, compiled), compiled).items()
                 if key != "floor"}
        runs: Dict[str, List[Run]] = {key: [] for key in progs}
        for _ in range(rounds):
            for key, program in progs.items():
                runs[key].append(run_sender(pair, program, 1.0, 1))
        first = {key: statistics.median(r.arrivals[0] - r.started for r in found) for key, found in runs.items()}
        for key, found in runs.items():
            readies = [r.ready - r.started for r in found if r.ready is not None]
            ready = f"{statistics.median(readies) * 1000:.1f}" if readies else "n/a"
            rss = statistics.median(r.max_rss_kib for r in found)
            base = bare[progs[key].bare_flags]
            print(f"| {'yes' if compiled else 'no'} | {progs[key].label} | {first[key] * 1000:.1f} | "
                  f"{ratio(first[key], first['naive'])} | {ready} | {rss / 1024:.1f} | {(rss - base) / 1024:.1f} |",
                  flush=True)
    print(f"(bare interpreter, peak RSS: {bare[()] / 1024:.1f} MiB, with -IS {bare[('-IS',)] / 1024:.1f} MiB; "
          "each program is set against the one with its own flags; goal 4: <= 5 MiB above it)")


def rates(pair: NetnsPair, program: Program) -> None:
    """Goal 6: the highest rate kept."""
    print()
    print("| interval | datagrams | skipped slots | rate /s | late > 0.5 ms or skipped | p99 late ms | CPU s / 1,000 |\n"
          "|---:|---:|---:|---:|---:|---:|---:|")
    smallest = None
    for interval in (0.001, 0.002, 0.005, 0.01):
        run = run_sender(pair, program, interval, 3000 if interval == 0.001 else int(3 / interval))
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


def syscalls(pair: NetnsPair, program: Program, count: int = 25, interval: float = 0.1) -> None:
    """Goal 2, the wake-ups: the system calls of the sandboxed loop, counted
    under strace (everything after the seccomp filter went in). Expected:
    datagram 0 leaves at once (a poll); the timer is armed once, with the
    interval as its period; every other datagram is one wait and one read of
    the timer; the interface (one ioctl) and the IPv6 source address (one
    pread) are looked at once a second, riding on the ticks."""
    strace = shutil.which("strace")
    if strace is None:
        print("\nsystem calls: strace not installed, not counted")
        return
    receiver = pair.receiver(GROUP, count=count, timeout=10)
    with tempfile.TemporaryDirectory() as scratch:
        trace = os.path.join(scratch, "trace")
        proc = pair.popen(pair.sender_ns, [
            strace, "-f", "-qq", "-o", trace,
            "-e", "trace=seccomp,pselect6,select,timerfd_settime,sendto,read,ioctl,pread64",
            *program.command(pair.SENDER_IF, interval, count), "--sandbox", "require"],
            env=program.env, cwd=program.cwd)
        _, err = proc.communicate(timeout=120)
        with open(trace) as f:
            lines = f.read().splitlines()
    if proc.returncode != 0 or len(received(receiver)) != count:
        raise SystemExit(f"bench: the sender under strace exited {proc.returncode}; its stderr:\n{err}")
    start = max(n for n, line in enumerate(lines) if re.search(r" seccomp\(SECCOMP_SET_MODE_FILTER, .*\) = 0$", line))
    loop = [line for line in lines[start + 1:] if "(" in line and "resumed" not in line]
    calls: Dict[str, int] = {}
    for line in loop:
        name = line.split()[1].split("(")[0]
        calls[name] = calls.get(name, 0) + 1
    timer_reads = sum(1 for line in loop if re.search(r" read\(\d+, .*, 8\)\s+= 8$", line))
    waits = calls.get("pselect6", 0) + calls.get("select", 0)
    seconds = int((count - 1) * interval)
    expected = {"sendto": count, "waits": count, "timerfd_settime": 1, "timer reads": count - 1,
                "ioctl": f"{seconds}-{seconds + 1}", "pread64": f"{seconds}-{seconds + 1}"}
    found = {"sendto": calls.get("sendto", 0), "waits": waits, "timerfd_settime": calls.get("timerfd_settime", 0),
             "timer reads": timer_reads, "ioctl": calls.get("ioctl", 0), "pread64": calls.get("pread64", 0)}
    print(f"\nsystem calls of the loop, {count} datagrams at {interval:g} s (a stall on a busy machine can add a"
          " wait, a read or a look):\n| call | expected | counted |\n|---|---:|---:|")
    for name, value in found.items():
        print(f"| {name} | {expected[name]} | {value} |")


PARTS = ("accuracy", "cpu", "contention", "metrics", "startup", "rates", "syscalls")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", action="store_true", help="1,000 datagrams at the 1 s interval (17 minutes)")
    p.add_argument("--rounds", type=int, default=7, help="start-up rounds (default 7)")
    p.add_argument("--paired", type=int, help="datagrams at 1 s for the CPU figure, all running at once "
                   "(default 120, --long 1000)")
    p.add_argument("--only", choices=PARTS, action="append",
                   help="run only these parts (repeatable)")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("make bench: needs root for network namespaces: run it as root (su -c 'make bench', "
              "or sudo make bench)", file=sys.stderr)
        return 77
    parts = args.only or PARTS
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at the start")
    try:
        pair = NetnsPair()
    except NetnsUnavailable as err:
        print(f"make bench: {err}: run it as root on a Linux host or VM", file=sys.stderr)
        return 77 if err.missing == "rights" else 69
    try:
        with tempfile.TemporaryDirectory() as scratch:
            progs = programs(copy_tree(scratch, compiled=False), compiled=False)
            if "accuracy" in parts:
                accuracy(pair, progs, 1000 if args.long else 60)
            if "cpu" in parts:
                cpu(pair, progs, args.paired or (1000 if args.long else 120))
            if "contention" in parts:
                contention(pair, progs, 2000)
            if "metrics" in parts:
                metrics(pair, progs["module"], 1500)
            if "startup" in parts:
                startup(pair, os.path.join(scratch, "startup"), args.rounds)
            if "rates" in parts:
                rates(pair, progs["module"])
            if "syscalls" in parts:
                syscalls(pair, progs["module"])
    finally:
        pair.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
