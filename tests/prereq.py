"""Prerequisites: a missing one skips a test on a developer's machine but
fails it under CI=true, where everything must be installed and run."""

from __future__ import annotations

import os
import shutil

import pytest

from mping_sender.sandbox import landlock, seccomp

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) the calling test unless condition holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI=true: {reason}")
    pytest.skip(reason)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces)")


def require_tool(name: str) -> str:
    """The path of a command-line tool, or skip/fail when it is not installed."""
    path = shutil.which(name)
    require(path is not None, f"needs the '{name}' command")
    return path or name


def require_sandbox() -> None:
    """Every sandbox layer this program can apply: libseccomp and Landlock."""
    require(seccomp.version() is not None, "needs libseccomp.so.2 (Debian package libseccomp2)")
    require(landlock.abi() >= 6, "needs Landlock ABI 6 or later (kernel 6.12+ with lsm=landlock)")
