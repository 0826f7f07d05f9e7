"""Build the Debian package for real, as a packager would: dpkg-buildpackage
in a scratch copy of the tree (the work tree stays clean), on this host or
in a throwaway copy of a release's cached build root (tools/rootfs.py), with
that release's debhelper. Shared by the packaging tests, the wheel test and
the system test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List, Optional

import rootfs
from helpers import ROOT
from prereq import require_root, require_tool


def tree_files() -> List[str]:
    """The files of the work tree that git would ship (tracked or new, not ignored)."""
    require_tool("git")
    result = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True)
    return [name for name in result.stdout.decode().split("\0") if name and (ROOT / name).is_file()]


def copy_tree(target: Path) -> Path:
    """Copy the files git would ship to target (created) and return it."""
    for name in tree_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


def build_deb(scratch: Path, release: Optional[str] = None) -> Path:
    """dpkg-buildpackage -us -uc in scratch, on this host (-b: the binary
    package only) or, given a release, in its build root (source and binary,
    with a .changes to lint); the .deb it made."""
    if release is None:
        for tool in ("dpkg-buildpackage", "dh", "dh_python3", "dh_apparmor"):
            require_tool(tool)
        argv = ["dpkg-buildpackage", "-us", "-uc", "-b"]
    else:
        argv = in_build_root(release, scratch, "/build/mping-sender", "dpkg-buildpackage", "-us", "-uc")
    source = copy_tree(scratch / "mping-sender")
    result = subprocess.run(argv, cwd=source, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (deb,) = scratch.glob("mping-sender_*_all.deb")
    return deb


def in_build_root(release: str, scratch: Path, workdir: str, *argv: str) -> List[str]:
    """The command line that runs argv in a throwaway copy of the release's
    build root (its own network namespace, nothing to reach), with scratch
    at /build."""
    require_root()
    for tool in ("systemd-nspawn", "mmdebstrap"):
        require_tool(tool)
    root = rootfs.ensure_build(release)
    return ["systemd-nspawn", "--quiet", "-D", str(root), "--volatile=overlay", "--register=no", "--keep-unit",
            "--private-network", "--pipe", f"--bind={scratch}:/build", f"--chdir={workdir}",
            "--setenv=LANG=C.UTF-8", "--setenv=HOME=/build", *argv]
