"""`pip install .` gives a working program: the wheel is built from a copy of
the tracked files (pip's isolated build, setuptools from the index),
installed into a fresh virtual environment, and its `mping-sender` run."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile

from mping_sender import __version__

from debpkg import copy_tree


def test_wheel_installs_a_program_that_runs(tmp_path):
    source = copy_tree(tmp_path / "src")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "wheels"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (tmp_path / "wheels").glob("mping_sender-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"mping_sender-{__version__}.dist-info/METADATA").decode()
    packaged = {name for name in names if name.startswith("mping_sender/")}
    tracked = {str(path.relative_to(source)) for path in (source / "mping_sender").rglob("*.py")}
    assert packaged == tracked and "mping_sender/sandbox/seccomp.py" in packaged
    assert "License-Expression: MIT" in metadata.splitlines()

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    install = subprocess.run([str(env / "bin/python"), "-m", "pip", "install", "-q", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    for argv in (["--version"], ["--help"]):
        run = subprocess.run([str(env / "bin/mping-sender"), *argv], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path)
        assert run.returncode == 0 and run.stderr == "", run.stderr
    assert run.stdout.startswith("usage: mping-sender")
    version = subprocess.run([str(env / "bin/mping-sender"), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout == f"mping-sender {__version__}\n"
    # The sandbox package is importable from the installed copy, not the checkout.
    where = subprocess.run([str(env / "bin/python"), "-I", "-c",
                            "import mping_sender.sandbox.seccomp as s; print(s.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert where.returncode == 0 and where.stdout.startswith(str(env)), where.stderr
