"""The releases the system test runs on, and the package built on each.

Every test here depends, through its fixtures, on `release`: the whole
system test runs once per Debian release in tools/rootfs.py (Debian 12, then
Debian 13), each time with the package built on that release by its own
debhelper (`deb`, built once per release and shared by the modules). A test
added to a module picks up every release through the module's fixture.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import rootfs
from debpkg import build_deb
from prereq import require_root, require_tool


@pytest.fixture(scope="session", params=rootfs.RELEASES)
def release(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def deb(release, tmp_path_factory) -> Path:
    """The .deb built in the release's build root (source and binary: the
    .changes beside it names both)."""
    require_root()
    for tool in ("mmdebstrap", "systemd-nspawn"):
        require_tool(tool)
    started = time.monotonic()
    root = rootfs.ensure_build(release)
    print(f"\n{release}: build root {root} ready in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    built = build_deb(tmp_path_factory.mktemp(f"build-{release}"), release)
    print(f"{release}: package {built.name} built in {time.monotonic() - started:.1f} s")
    return built
