"""The Debian package, built for real with dpkg-buildpackage in a scratch
copy of the tree, checked with lintian and run from a scratch root; and the
PKGBUILD, sourced in bash, whose package() must ship the same files.

Building takes a few seconds; it happens once per test run (module fixture).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, Set

import pytest

from mping_sender import __version__

from debpkg import build_deb
from prereq import require_root, require_tool

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    return build_deb(tmp_path_factory.mktemp("debbuild"))


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True).stdout.strip()


def deb_files(deb: Path) -> Set[str]:
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    names = subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True).stdout.decode()
    return {name[2:] for name in names.splitlines() if not name.endswith("/")}


def test_control_fields(deb):
    assert deb.is_file()
    assert deb_field(deb, "Package") == "mping-sender"
    assert deb_field(deb, "Version") == __version__
    assert deb_field(deb, "Architecture") == "all"
    assert "python3" in deb_field(deb, "Depends")
    assert deb_field(deb, "Recommends") == "libseccomp2"


def test_contents_and_conffiles(deb, tmp_path):
    files = deb_files(deb)
    for name in ("usr/bin/mping-sender", "usr/lib/mping-sender/mping_sender/cli.py",
                 "usr/lib/mping-sender/mping_sender/notify.py", "lib/systemd/system/mping-sender.service",
                 "lib/systemd/system/mping-sender@.service", "etc/default/mping-sender",
                 "etc/apparmor.d/usr.bin.mping-sender", "usr/share/man/man8/mping-sender.8.gz",
                 "usr/share/mping-sender/wireshark/mping.lua", "usr/share/doc/mping-sender/copyright",
                 "usr/share/doc/mping-sender/changelog.gz"):
        assert name in files, name
    assert not [name for name in files if "__pycache__" in name], "byte-code is made by py3compile at install"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "control")], check=True)
    conffiles = (tmp_path / "control" / "conffiles").read_text().split()
    assert sorted(conffiles) == ["/etc/apparmor.d/usr.bin.mping-sender", "/etc/default/mping-sender"]
    postinst = (tmp_path / "control" / "postinst").read_text()
    assert "py3compile -p mping-sender /usr/lib/mping-sender" in postinst
    assert "apparmor_parser -r -T -W" in postinst


def test_lintian_reports_no_errors_or_warnings(deb):
    lintian = require_tool("lintian")
    result = subprocess.run([lintian, "--fail-on", "error,warning", str(deb)], capture_output=True, text=True,
                            timeout=600)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not tags, result.stdout + result.stderr


def in_scratch_root(root: Path, *argv: str, env: Dict[str, str] = None) -> subprocess.CompletedProcess:
    """Run argv with the package's /usr laid over the host's (an overlay in a
    private mount namespace), as if it were installed; the host is untouched."""
    require_root()
    require_tool("unshare")
    script = f'mount -t overlay overlay -o lowerdir={root}/usr:/usr /usr && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", *argv],
                          capture_output=True, text=True, timeout=60, cwd="/", env=env)


def test_installed_program_runs(deb, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    version = in_scratch_root(root, "/usr/bin/mping-sender", "--version")
    assert (version.returncode, version.stdout, version.stderr) == (0, f"mping-sender {__version__}\n", "")
    usage = in_scratch_root(root, "/usr/bin/mping-sender", "--help")
    assert usage.returncode == 0 and "--interface-name" in usage.stdout, usage.stderr
    # The installed unit against the installed program and man page.
    verify = in_scratch_root(root, "systemd-analyze", "verify", f"{root}/lib/systemd/system/mping-sender.service")
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")


def pkgbuild(*commands: str, pkgdir: Path) -> str:
    """Source the PKGBUILD in bash (as makepkg does) and run commands."""
    require_tool("bash")
    script = "set -euo pipefail\nsource ./PKGBUILD\n" + "\n".join(commands)
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, startdir=str(ROOT), srcdir=str(pkgdir.parent / "src"),
                                     pkgdir=str(pkgdir)))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pkgbuild_fields(tmp_path):
    out = pkgbuild('printf "%s\\n" "$pkgname" "$pkgver" "${arch[*]}" "${depends[*]}"',
                   'printf "%s\\n" "${optdepends[@]}" | cut -d: -f1 | paste -sd" "',
                   'printf "%s\\n" "${backup[*]}"',
                   "declare -F check package | paste -sd' '", pkgdir=tmp_path / "pkg")
    assert out.splitlines() == ["mping-sender", __version__, "any", "python",
                                "libseccomp apparmor wireshark-cli", "etc/default/mping-sender",
                                "check package"]
    assert "pytest" in (ROOT / "PKGBUILD").read_text().split("check()", 1)[1].split("}", 1)[0]


def normalised_deb_files(deb: Path) -> Set[str]:
    """The .deb's files as Arch names them: Debian keeps units in /lib (the
    same directory on merged-/usr systems), compresses man pages and large
    docs, and adds its own copyright, changelog and Python runtime hook."""
    debian_only = {"usr/share/doc/mping-sender/copyright", "usr/share/doc/mping-sender/changelog.gz",
                   "usr/share/python3/runtime.d/mping-sender.rtupdate", "usr/share/lintian/overrides/mping-sender"}
    names = set()
    for name in deb_files(deb) - debian_only:
        if name.startswith("lib/"):
            name = "usr/" + name
        if name.endswith(".gz") and name.startswith(("usr/share/man/", "usr/share/doc/")):
            name = name[:-3]
        names.add(name)
    return names


def test_pkgbuild_package_ships_the_debian_files(deb, tmp_path):
    pkgdir = tmp_path / "pkg"
    pkgbuild("package", pkgdir=pkgdir)
    arch = {str(path.relative_to(pkgdir)) for path in pkgdir.rglob("*") if path.is_file() or path.is_symlink()}
    assert arch - {"usr/share/licenses/mping-sender/LICENSE"} == normalised_deb_files(deb)
    assert os.access(pkgdir / "usr/bin/mping-sender", os.X_OK)
    launcher = (pkgdir / "usr/bin/mping-sender").read_text()
    assert launcher.startswith("#!/usr/bin/python3 -IS\n") and '"/usr/lib/mping-sender"' in launcher
