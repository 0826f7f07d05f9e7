"""What many tests share: where the tree is, how to run the program
from it (``python3 -m mping_sender`` with the tree on PYTHONPATH), and a
capture of what goes on the wire (``tools/frames.py``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from mping_sender.log import INFO, Logger

ROOT = Path(__file__).resolve().parent.parent
FRAMES = ROOT / "tools" / "frames.py"


def program_env(**extra: str) -> Dict[str, str]:
    """This environment, with the tree on PYTHONPATH (and extra variables)."""
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def program(*args: str, python_options: Sequence[str] = ()) -> List[str]:
    """The argv that runs the tree's program."""
    return [sys.executable, *python_options, "-m", "mping_sender", *args]


def run_program(*args: str, python_options: Sequence[str] = (), env: Dict[str, str] = None,
                **kwargs) -> subprocess.CompletedProcess:
    """Run the tree's program to its end (30 s at most), output captured as text."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("timeout", 30)
    return subprocess.run(program(*args, python_options=python_options), text=True,
                          env=program_env() if env is None else env, **kwargs)


class StringOutput(io.BytesIO):
    """Where a test's logger writes: it takes every byte at once, as a
    stream that never blocks, and getvalue() gives them as text."""

    def getvalue(self) -> str:  # type: ignore[override]
        return super().getvalue().decode()


def string_log(level: int = INFO, journal: bool = True) -> Tuple[Logger, StringOutput]:
    """The program's logger writing journal lines (``<N>message``: exact
    text, the level in N) to a string, and the string."""
    output = StringOutput()
    return Logger(output, level, journal=journal), output


def started(proc: subprocess.Popen, marker: str = "sandbox:", timeout: float = 30.0) -> str:
    """Read the sender's log (text) until a line holds ``marker`` (by default,
    until it is about to enter the loop); return what was read. A process
    that has not logged it within ``timeout`` seconds is killed."""
    seen = []
    deadline = threading.Timer(timeout, proc.kill)  # ends the read below: the pipe closes
    deadline.start()
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                return "".join(seen)
    finally:
        deadline.cancel()
    raise AssertionError(f"never logged {marker!r}:\n" + "".join(seen) + (proc.stderr.read() or ""))


def capture(pair, ns: str, interface: str) -> subprocess.Popen:
    """Start capturing every frame on ``interface`` in namespace ``ns``;
    returns once the capture's socket is bound."""
    proc = pair.popen(ns, [sys.executable, str(FRAMES), "--interface", interface], stdin=subprocess.PIPE)
    line = proc.stderr.readline()
    assert line.strip() == "ready", line + proc.stderr.read()
    return proc


def frames(proc: subprocess.Popen) -> List[Tuple[int, bytes]]:
    """Stop a capture and return its frames, (packet type, bytes) each: what
    was still queued when it stopped is taken too, so nothing races the stop."""
    out, err = proc.communicate("stop\n", timeout=30)
    assert proc.returncode == 0, err
    return [(direction, bytes.fromhex(data)) for direction, data in json.loads(out)]
