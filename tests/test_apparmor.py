"""The AppArmor profile: Debian's parser accepts it, and it grants only
what the program needs (no capabilities, no writes but the notify socket)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prereq import require_tool

PROFILE = Path(__file__).resolve().parent.parent / "apparmor" / "usr.bin.mping-sender"


def rules():
    """The profile's rules, comments and blank lines removed."""
    lines = (line.split("#", 1)[0].strip() for line in PROFILE.read_text().splitlines())
    return [line for line in lines if line]


def test_parser_accepts_profile():
    parser = require_tool("apparmor_parser")
    result = subprocess.run([parser, "-Q", "--skip-kernel-load", str(PROFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    names = subprocess.run([parser, "-N", str(PROFILE)], capture_output=True, text=True, timeout=60)
    assert names.returncode == 0 and names.stdout.split() == ["mping-sender"], names.stdout + names.stderr


def test_enforce_mode_for_the_installed_launcher():
    header = next(line for line in rules() if line.startswith("profile "))
    # attach_disconnected only: no complain mode
    assert header == "profile mping-sender /usr/bin/mping-sender flags=(attach_disconnected) {"


def test_no_capabilities_and_no_writes():
    body = rules()
    assert not [line for line in body if re.match(r"(allow\s+)?capability\b", line)]
    writes = [line for line in body if re.search(r"\s[a-z]*[wa][a-z]*,$", line) and line.startswith("/")]
    assert writes == ["/run/systemd/notify w,"]
    assert "deny /usr/lib/mping-sender/** w," in body


def test_network_is_datagrams_and_the_metrics_endpoint_s_tcp_only():
    network = sorted(line for line in rules() if line.startswith("network "))
    assert network == ["network inet dgram,", "network inet stream,", "network inet6 dgram,",
                       "network inet6 stream,", "network unix dgram,"]
    assert [line for line in rules() if line.startswith("unix ")] == [
        "unix (create, connect, send, getattr, getopt, setopt) type=dgram,"]
