"""`make install` puts a working program under DESTDIR/PREFIX."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mping_sender import __version__

from helpers import ROOT
from prereq import require_tool



def test_make_install_into_destdir(tmp_path):
    require_tool("make")
    subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", "PREFIX=/opt/mps"], cwd=ROOT, check=True)
    script = tmp_path / "opt/mps/bin/mping-sender"
    assert script.read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert (tmp_path / "opt/mps/lib/mping-sender/mping_sender/cli.py").is_file()
    # Run the installed launcher with its library directory moved under DESTDIR.
    text = script.read_text().replace("/opt/mps/lib/mping-sender", str(tmp_path / "opt/mps/lib/mping-sender"))
    script.write_text(text)
    result = subprocess.run(["/usr/bin/python3", "-I", str(script), "--version"], capture_output=True, text=True,
                            cwd="/", timeout=30)
    assert (result.returncode, result.stdout.strip()) == (0, f"mping-sender {__version__}")


def make(*args: str, cwd: str = ROOT) -> str:
    require_tool("make")
    result = subprocess.run(["make", "-s", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sysconfdir_follows_prefix_and_the_units_name_it(tmp_path):
    make("install", f"DESTDIR={tmp_path}", "PREFIX=/tmp/x")
    assert not (tmp_path / "etc").exists()
    assert (tmp_path / "tmp/x/etc/default/mping-sender").is_file()
    assert (tmp_path / "tmp/x/etc/apparmor.d/usr.bin.mping-sender").is_file()
    units = tmp_path / "tmp/x/lib/systemd/system"
    assert "EnvironmentFile=/tmp/x/etc/default/mping-sender" in (units / "mping-sender.service").read_text()
    assert "EnvironmentFile=/tmp/x/etc/mping-sender/%i.conf" in (units / "mping-sender@.service").read_text()
    make("install", f"DESTDIR={tmp_path / 'usr'}", "PREFIX=/usr")  # distributions: /etc
    assert (tmp_path / "usr/etc/default/mping-sender").is_file()


def test_install_keeps_changed_configuration_and_uninstall_removes_the_rest(tmp_path):
    where = [f"DESTDIR={tmp_path}", "PREFIX=/opt/mps"]
    make("install", *where)
    settings = tmp_path / "opt/mps/etc/default/mping-sender"
    profile = tmp_path / "opt/mps/etc/apparmor.d/usr.bin.mping-sender"
    shipped = profile.read_text()
    settings.write_text("INTERFACE_NAME=eth7\n")
    profile.write_text(shipped + "# the operator's line\n")
    out = make("install", *where)
    assert settings.read_text() == "INTERFACE_NAME=eth7\n"
    assert profile.read_text().endswith("# the operator's line\n")
    assert f"kept {settings} (changed)" in out and f"kept {profile} (changed)" in out
    assert Path(f"{profile}.dpkg-dist").read_text() == shipped  # beside it, under a name AppArmor skips

    make("uninstall", *where)
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert left == ["opt/mps/etc/apparmor.d/usr.bin.mping-sender", "opt/mps/etc/default/mping-sender"]
    # Once the operator has gone back to the shipped files, everything goes.
    make("install", *where)
    profile.write_text(shipped)
    settings.unlink()
    make("install", *where)
    make("uninstall", *where)
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]
