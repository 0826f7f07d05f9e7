"""A cached Debian 12 root file system for the system tests: built once with
mmdebstrap from Debian's packages, kept outside the tree, never modified.

Users boot throwaway copies of it (``systemd-nspawn --volatile=overlay``, or
an ext4 image made from it for a VM), so a later run takes seconds. The
cache is keyed by the package list: changing PACKAGES builds a new one.

    python3 tools/rootfs.py      # build (if needed) and print the path
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

SUITE = "bookworm"
# What an operator's router has (systemd as PID 1, Python, iproute2,
# libseccomp) plus what the AppArmor VM boots: the parser and a kernel with
# its initramfs. The package under test is installed into a copy, never here.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "iproute2", "libseccomp2", "apparmor",
            "linux-image-amd64", "initramfs-tools", "kmod", "udev", "procps")
CACHE = pathlib.Path(os.environ.get("MPING_ROOTFS_CACHE", "/var/cache/mping-sender-tests"))


def path() -> pathlib.Path:
    """Where the root file system for this package list lives."""
    key = hashlib.sha256(" ".join((SUITE,) + PACKAGES).encode()).hexdigest()[:12]
    return CACHE / f"{SUITE}-{key}"


def ensure() -> pathlib.Path:
    """The cached root file system, built first when it is missing.

    Built into a temporary directory and renamed, so an interrupted build
    never leaves a half-made cache behind.
    """
    root = path()
    if (root / "usr" / "bin" / "python3").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--include=" + ",".join(PACKAGES),
                    SUITE, str(partial)], check=True)
    partial.rename(root)
    return root


if __name__ == "__main__":
    try:
        print(ensure())
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"rootfs: {err}", file=sys.stderr)
        sys.exit(1)
