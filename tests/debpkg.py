"""Build the Debian package for real, as a packager would: dpkg-buildpackage
in a scratch copy of the tree (the work tree stays clean). Shared by the
packaging tests, the wheel test and the system test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import List

from helpers import ROOT
from prereq import require_tool



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


def build_deb(scratch: Path) -> Path:
    """dpkg-buildpackage -us -uc -b in scratch; the .deb it made."""
    for tool in ("dpkg-buildpackage", "dh", "dh_python3", "dh_apparmor"):
        require_tool(tool)
    source = copy_tree(scratch / "mping-sender")
    result = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=source, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (deb,) = scratch.glob("mping-sender_*_all.deb")
    return deb
