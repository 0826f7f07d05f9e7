"""Cached Debian root file systems for the tests, one set per release: built
once with mmdebstrap from Debian's packages, kept outside the tree, never
modified.

Two kinds per release. The system root is what an operator's router has
(systemd as PID 1, Python, iproute2, libseccomp) plus what the AppArmor VM
boots: the system test boots throwaway copies of it (``systemd-nspawn
--volatile=overlay``, or an ext4 image made from it for a VM). The build
root has what debian/control's Build-Depends name, build-essential and
lintian: the package is built and checked in a throwaway copy of it, so
each release builds and lints the package with its own tools.

Each cache is keyed by its release and package list: changing either (or
Build-Depends) builds a new one; an unchanged one is ready in a moment.

    python3 tools/rootfs.py [--build] [RELEASE...]   # build (if needed), print the paths
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Tuple

# Debian 12 (oldstable) and Debian 13 (stable): the system test runs on
# each, with the package built on that release.
RELEASES = ("bookworm", "trixie")
DEFAULT = "bookworm"  # the host's release: the tests that need one root use it
SYSTEM = ("systemd", "systemd-sysv", "dbus", "python3", "iproute2", "libseccomp2", "apparmor",
          "linux-image-amd64", "initramfs-tools", "kmod", "udev", "procps")
CONTROL = pathlib.Path(__file__).resolve().parent.parent / "debian" / "control"
CACHE = pathlib.Path(os.environ.get("MPING_ROOTFS_CACHE", "/var/cache/mping-sender-tests"))


def build_packages() -> Tuple[str, ...]:
    """build-essential, the Build-Depends of debian/control (debhelper for
    its virtual debhelper-compat) and lintian."""
    text = CONTROL.read_text()
    field = re.search(r"^Build-Depends:(.*(?:\n[ \t].*)*)", text, re.M)
    names = [re.split(r"[\s(<\[]", item.strip(), maxsplit=1)[0] for item in field.group(1).split(",")]
    names = ["debhelper" if name == "debhelper-compat" else name for name in names if name]
    return ("build-essential", *names, "lintian")


def path(release: str = DEFAULT, packages: Tuple[str, ...] = SYSTEM) -> pathlib.Path:
    """Where the root file system for this release and package list lives."""
    key = hashlib.sha256(" ".join((release,) + packages).encode()).hexdigest()[:12]
    return CACHE / f"{release}-{key}"


def ensure(release: str = DEFAULT, packages: Tuple[str, ...] = SYSTEM) -> pathlib.Path:
    """The cached root file system, built first when it is missing.

    Built into a temporary directory and renamed, so an interrupted build
    never leaves a half-made cache behind.
    """
    root = path(release, packages)
    if (root / "usr" / "bin" / "python3").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--include=" + ",".join(packages),
                    release, str(partial)], check=True)
    partial.rename(root)
    return root


def ensure_build(release: str = DEFAULT) -> pathlib.Path:
    """The cached build root of a release."""
    return ensure(release, build_packages())


def main() -> int:
    parser = argparse.ArgumentParser(description="Build (if needed) and print the cached root file systems.")
    parser.add_argument("--build", action="store_true", help="the build roots, not the system roots")
    parser.add_argument("releases", nargs="*", metavar="RELEASE",
                        help=f"one of {', '.join(RELEASES)} (default {DEFAULT})")
    args = parser.parse_args()
    for release in args.releases:
        if release not in RELEASES:
            parser.error(f"unknown release {release!r} (one of {', '.join(RELEASES)})")
    try:
        for release in args.releases or [DEFAULT]:
            print(ensure_build(release) if args.build else ensure(release))
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"rootfs: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
