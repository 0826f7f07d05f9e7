"""The systemd units as `make install` ships them: systemd's own analysers,
and the command line that ExecStart builds from /etc/default/mping-sender."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from helpers import ROOT
from prereq import require_tool

UNITS = ("mping-sender.service", "mping-sender@.service")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """make install PREFIX=/usr into a scratch DESTDIR."""
    require_tool("make")
    destdir = tmp_path_factory.mktemp("destdir")
    subprocess.run(["make", "-s", "install", f"DESTDIR={destdir}", "PREFIX=/usr"], cwd=ROOT, check=True)
    return destdir


def unit_paths(installed: Path, tmp_path: Path) -> List[Path]:
    """The unit, and an instance of the template (analysers want a name)."""
    unitdir = installed / "usr/lib/systemd/system"
    instance = tmp_path / "mping-sender@test.service"
    instance.write_text((unitdir / "mping-sender@.service").read_text())
    return [unitdir / "mping-sender.service", instance]


@pytest.mark.parametrize("which", [0, 1], ids=UNITS)
def test_security_exposure_is_at_most_one(installed, tmp_path, which):
    require_tool("systemd-analyze")
    unit = unit_paths(installed, tmp_path)[which]
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.0, result.stdout


@pytest.mark.parametrize("which", [0, 1], ids=UNITS)
def test_verify_reports_nothing(installed, tmp_path, which):
    require_tool("systemd-analyze")
    require_tool("man")
    unit = unit_paths(installed, tmp_path)[which]
    # verify also checks that Documentation=man:mping-sender(8) exists.
    env = dict(os.environ, MANPATH=str(installed / "usr/share/man"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_template_differs_only_in_description_and_settings_file(installed):
    unitdir = installed / "usr/lib/systemd/system"
    plain = (unitdir / "mping-sender.service").read_text().splitlines()
    template = (unitdir / "mping-sender@.service").read_text().splitlines()
    changed = [(a, b) for a, b in zip(plain, template) if a != b]
    assert len(plain) == len(template)
    assert changed == [("Description=mping multicast test source", "Description=mping multicast test source (%i)"),
                       ("EnvironmentFile=/etc/default/mping-sender", "EnvironmentFile=/etc/mping-sender/%i.conf")]


def unit_setting(name: str) -> Optional[str]:
    """The unit's one value for a setting; None when it is not set."""
    values = [line.split("=", 1)[1] for line in (ROOT / "mping-sender.service").read_text().splitlines()
              if line.startswith(name + "=")]
    assert len(values) <= 1, values
    return values[0] if values else None


def exec_start_argv(settings: Dict[str, str], tmp_path: Path) -> List[str]:
    """Run ExecStart's real sh command with these settings, the program
    replaced by one that prints its arguments. systemd's part is done as
    systemd.service(5) documents it: "$$" is "$", and a lone "$ARGS" word
    becomes the value split at whitespace (no word when empty)."""
    words = shlex.split(unit_setting("ExecStart").replace("$$", "$"))
    assert words[:2] == ["/bin/sh", "-c"] and words[-1] == "$ARGS", words
    argv = words[:-1] + settings.get("ARGS", "").split()
    printer = tmp_path / "print-argv"
    printer.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    printer.chmod(0o755)
    assert "exec /usr/bin/mping-sender " in argv[2]
    argv[2] = argv[2].replace("/usr/bin/mping-sender", str(printer))
    result = subprocess.run(argv, env=settings, capture_output=True, text=True, timeout=30, check=True)
    return json.loads(result.stdout)


def test_empty_settings_become_no_arguments(tmp_path):
    empty = {"INTERFACE_NAME": "eth0", "BIND_ADDRESS": "", "ADDRESS": "", "ARGS": ""}
    assert exec_start_argv(empty, tmp_path) == ["--interface-name=eth0"]
    assert exec_start_argv({}, tmp_path) == []  # the program then says --interface-name is required


def test_settings_become_options(tmp_path):
    settings = {"INTERFACE_NAME": "eth0", "BIND_ADDRESS": "2001:db8::7", "ADDRESS": "ff3e::8000:42",
                "ARGS": "--ttl 8  --interval 0.5"}
    assert exec_start_argv(settings, tmp_path) == [
        "--interface-name=eth0", "--bind-address=2001:db8::7", "--address=ff3e::8000:42",
        "--ttl", "8", "--interval", "0.5"]


def test_default_file_names_every_setting_commented():
    text = (ROOT / "etc/default/mping-sender").read_text()
    for name in ("INTERFACE_NAME", "BIND_ADDRESS", "ADDRESS", "ARGS"):
        assert re.search(rf"^#{name}=", text, re.M), name
    assert not [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_unit_is_confined_as_documented():
    """The settings the man page and SECURITY.md promise."""
    assert unit_setting("Type") == "notify"
    assert unit_setting("DynamicUser") == "yes"
    assert unit_setting("CapabilityBoundingSet") == ""
    # Egress is pinned in the process (connected socket + seccomp), so no IP
    # filter that would drop replies from reflectors' unicast addresses.
    assert unit_setting("IPAddressDeny") is None and unit_setting("IPAddressAllow") is None
    assert unit_setting("SecureBits").split() == ["noroot", "noroot-locked", "no-setuid-fixup",
                                                  "no-setuid-fixup-locked", "keep-caps-locked"]
    assert unit_setting("SyslogIdentifier") == "mping-sender"
    assert unit_setting("RestrictAddressFamilies") == "AF_INET AF_INET6 AF_UNIX"
    assert unit_setting("UMask") == "0077"
    assert unit_setting("ProcSubset") == "pid"
    assert re.fullmatch(r"\d+s", unit_setting("WatchdogSec"))


def test_another_prefix_is_written_into_units_and_profile(tmp_path):
    require_tool("make")
    subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", "PREFIX=/opt/mps"], cwd=ROOT, check=True)
    for unit in UNITS:
        text = (tmp_path / "opt/mps/lib/systemd/system" / unit).read_text()
        assert "exec /opt/mps/bin/mping-sender " in text and "/usr/bin/mping-sender" not in text
        assert "\nRootDirectory=/opt/mps/lib/mping-sender/root\n" in text
        assert "\nBindReadOnlyPaths=/usr /opt/mps\n" in text
    profile = (tmp_path / "opt/mps/etc/apparmor.d/usr.bin.mping-sender").read_text()
    assert "profile mping-sender /opt/mps/bin/mping-sender flags=(attach_disconnected) {" in profile
    assert "/opt/mps/lib/mping-sender/** r," in profile and "/usr/lib/mping-sender" not in profile
