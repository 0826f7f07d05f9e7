"""`make install` puts a working program under DESTDIR/PREFIX."""

from __future__ import annotations

import os
import subprocess

from mping_sender import __version__

from prereq import require_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_make_install_into_destdir(tmp_path):
    require_tool("make")
    subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", "PREFIX=/opt/mps"], cwd=ROOT, check=True)
    script = tmp_path / "opt/mps/bin/mping-sender"
    assert script.read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert (tmp_path / "opt/mps/lib/mping-sender/mping_sender/cli.py").is_file()
    # Run the installed launcher with its library directory moved under DESTDIR.
    text = script.read_text().replace("/opt/mps/lib/mping-sender", str(tmp_path / "opt/mps/lib/mping-sender"))
    script.write_text(text)
    result = subprocess.run(["/usr/bin/python3", "-I", str(script), "--version"], capture_output=True, text=True,
                            cwd="/", timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, f"mping-sender {__version__}")
