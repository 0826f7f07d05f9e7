"""One source of truth for the version: mping_sender/__init__.py. Every
other place that names the release must say the same."""

from __future__ import annotations

import re
import subprocess

from mping_sender import __version__

from helpers import ROOT
from prereq import require_tool



def first(pattern: str, relative: str) -> str:
    match = re.search(pattern, (ROOT / relative).read_text(), re.M)
    assert match, f"{relative}: no match for {pattern}"
    return match.group(1)


def test_version_is_semantic():
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_every_place_names_the_same_version():
    places = {
        "debian/changelog": first(r"^mping-sender \(([^)]+)\)", "debian/changelog"),
        "PKGBUILD": first(r"^pkgver=(\S+)$", "PKGBUILD"),
        "wireshark/mping.lua": first(r'^local PLUGIN_VERSION = "([^"]+)"', "wireshark/mping.lua"),
        "CHANGELOG.md": first(r"^## (\d+\.\d+\.\d+)", "CHANGELOG.md"),  # after any "## Unreleased"
        "man/mping-sender.8": first(r'^\.TH .* "mping-sender ([^"]+)"', "man/mping-sender.8"),
    }
    assert places == {place: __version__ for place in places}


def test_security_policy_supports_this_release():
    major_minor = ".".join(__version__.split(".")[:2])
    assert re.search(rf"^\| {re.escape(major_minor)}\.x \| yes", (ROOT / "SECURITY.md").read_text(), re.M)


def test_the_package_upgrades_over_the_original():
    """The C++ mping-sender's Debian package is 1.0.0-1: ours must sort above it."""
    dpkg = require_tool("dpkg")
    upgrade = subprocess.run([dpkg, "--compare-versions", __version__, "gt", "1.0.0-1"])
    assert upgrade.returncode == 0, f"{__version__} does not upgrade over the original's 1.0.0-1"
    changelog = (ROOT / "debian/changelog").read_text().split("\n -- ", 1)[0]
    assert "1.0.0-1" in changelog and "--allow-unicast" in changelog, "say what changed for the original's users"
