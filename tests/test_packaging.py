"""The Debian package, built for real with dpkg-buildpackage in a scratch
copy of the tree and run from a scratch root (each release's lintian checks
it in the system test: tests/system/test_lintian.py); the
`make dist` tarball; and the Arch package, built for real by makepkg from
that tarball, which must ship the same files as the .deb.

Each package is built once per test run (module fixtures).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Set

import pytest

from mping_sender import __version__

from helpers import ROOT
from debpkg import build_deb
from prereq import require_root, require_tool



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
                 "usr/lib/mping-sender/mping_sender/notify.py", "usr/lib/systemd/system/mping-sender.service",
                 "usr/lib/systemd/system/mping-sender@.service", "etc/default/mping-sender",
                 "etc/apparmor.d/usr.bin.mping-sender", "usr/share/man/man8/mping-sender.8.gz",
                 "usr/share/mping-sender/wireshark/mping.lua", "usr/share/doc/mping-sender/copyright",
                 "usr/share/doc/mping-sender/changelog.gz"):
        assert name in files, name
    assert not [name for name in files if "__pycache__" in name], "byte-code is made by py3compile at install"
    assert not [name for name in files if not name.startswith(("usr/", "etc/"))], "/usr only: /lib is an alias"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "control")], check=True)
    conffiles = (tmp_path / "control" / "conffiles").read_text().split()
    assert sorted(conffiles) == ["/etc/apparmor.d/usr.bin.mping-sender", "/etc/default/mping-sender"]
    postinst = (tmp_path / "control" / "postinst").read_text()
    assert "py3compile -p mping-sender /usr/lib/mping-sender" in postinst
    assert "apparmor_parser -r -T -W" in postinst
    # dh_installsystemd found the units in /usr/lib/systemd/system: it
    # restarts the service on upgrade and stops it on remove.
    assert "deb-systemd-invoke $_dh_action 'mping-sender.service'" in postinst
    assert "deb-systemd-invoke stop 'mping-sender.service'" in (tmp_path / "control" / "prerm").read_text()
    assert "deb-systemd-helper purge 'mping-sender.service'" in (tmp_path / "control" / "postrm").read_text()


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
    verify = in_scratch_root(root, "systemd-analyze", "verify", f"{root}/usr/lib/systemd/system/mping-sender.service")
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")


def pkgbuild(*commands: str) -> str:
    """Source the PKGBUILD in bash (as makepkg does) and run commands."""
    require_tool("bash")
    script = "set -euo pipefail\nsource ./PKGBUILD\n" + "\n".join(commands)
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pkgbuild_fields():
    out = pkgbuild('printf "%s\\n" "$pkgname" "$pkgver" "${arch[*]}" "${depends[*]}"',
                   'printf "%s\\n" "${optdepends[@]}" | cut -d: -f1 | paste -sd" "',
                   'printf "%s\\n" "${backup[*]}" "${source[*]}" "${#sha256sums[@]}"',
                   "declare -F check package | paste -sd' '")
    assert out.splitlines() == ["mping-sender", __version__, "any", "python",
                                "libseccomp apparmor wireshark-cli",
                                "etc/default/mping-sender etc/apparmor.d/usr.bin.mping-sender",
                                f"https://mping-sender.example.org/releases/mping-sender-{__version__}.tar.gz", "1",
                                "check package"]
    assert "$startdir" not in (ROOT / "PKGBUILD").read_text()


@pytest.fixture(scope="module")
def arch_package(tmp_path_factory) -> Path:
    """`make dist`, then makepkg for real on dist/ (its PKGBUILD names the
    tarball's sha256), as an unprivileged user: makepkg refuses root."""
    for tool in ("make", "makepkg", "fakeroot", "bsdtar"):
        require_tool(tool)
    dist = Path(tempfile.mkdtemp(prefix="mps-makepkg-"))  # nobody must reach it: not under pytest's 0700 tmp
    try:
        subprocess.run(["make", "-s", "dist", f"DISTDIR={dist}"], cwd=ROOT, check=True, capture_output=True)
        as_user: List[str] = []
        if os.geteuid() == 0:
            shutil.chown(dist, "nobody", "nogroup")
            for path in dist.iterdir():
                shutil.chown(path, "nobody", "nogroup")
            as_user = [require_tool("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        result = subprocess.run([*as_user, "makepkg", "--nodeps", "--noconfirm", "--noprogressbar"], cwd=dist,
                                capture_output=True, text=True, timeout=600,
                                env=dict(os.environ, HOME=str(dist), PKGEXT=".pkg.tar.gz"))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Starting check()" in result.stdout + result.stderr  # the pure tests ran
        (package,) = dist.glob(f"mping-sender-{__version__}-1-any.pkg.tar.gz")
        keep = tmp_path_factory.mktemp("arch") / package.name
        shutil.copy(package, keep)
        return keep
    finally:
        shutil.rmtree(dist, ignore_errors=True)


def arch_files(package: Path) -> Set[str]:
    listing = subprocess.run(["bsdtar", "-tf", str(package)], capture_output=True, text=True, check=True).stdout
    return {name for name in listing.splitlines() if not name.endswith("/") and not name.startswith(".")}


def normalised(files: Set[str]) -> Set[str]:
    """A file list as Arch names it: both compress man pages, Debian also
    large docs."""
    names = set()
    for name in files:
        if name.endswith(".gz") and name.startswith(("usr/share/man/", "usr/share/doc/")):
            name = name[:-3]
        names.add(name)
    return names


def test_makepkg_ships_the_debian_files_with_byte_code(deb, arch_package):
    arch = arch_files(arch_package)
    byte_code = {name for name in arch if "/__pycache__/" in name}
    # Debian adds its copyright, changelog, Python runtime hook and lintian
    # overrides, and makes
    # the byte-code at install time; Arch ships the licence and the byte-code.
    debian_only = {"usr/share/doc/mping-sender/copyright", "usr/share/doc/mping-sender/changelog",
                   "usr/share/python3/runtime.d/mping-sender.rtupdate", "usr/share/lintian/overrides/mping-sender"}
    assert normalised(arch) - byte_code - {"usr/share/licenses/mping-sender/LICENSE"} == \
        normalised(deb_files(deb)) - debian_only
    tag = sys.implementation.cache_tag
    sources = {name for name in arch if name.startswith("usr/lib/mping-sender/") and name.endswith(".py")}
    assert byte_code == {f"{name.rsplit('/', 1)[0]}/__pycache__/{name.rsplit('/', 1)[1][:-3]}.{tag}.pyc"
                         for name in sources}
    info = subprocess.run(["bsdtar", "-xOf", str(arch_package), ".PKGINFO"], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    assert sorted(line for line in info if line.startswith("backup = ")) == [
        "backup = etc/apparmor.d/usr.bin.mping-sender", "backup = etc/default/mping-sender"]
    launcher = subprocess.run(["bsdtar", "-xOf", str(arch_package), "usr/bin/mping-sender"], capture_output=True,
                              text=True, check=True).stdout
    assert launcher.startswith("#!/usr/bin/python3 -IS\n") and '"/usr/lib/mping-sender"' in launcher


def test_dist_is_the_tracked_files_and_reproducible(tmp_path):
    require_tool("git")
    for out in ("a", "b"):
        subprocess.run(["make", "-s", "dist", f"DISTDIR={tmp_path / out}"], cwd=ROOT, check=True,
                       capture_output=True)
    name = f"mping-sender-{__version__}.tar.gz"
    first, second = ((tmp_path / out / name).read_bytes() for out in ("a", "b"))
    assert first == second
    listing = subprocess.run(["tar", "-tzf", str(tmp_path / "a" / name)], capture_output=True, text=True,
                             check=True).stdout.split()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listing) == sorted(f"mping-sender-{__version__}/{f}" for f in tracked if f != "PKGBUILD")
    digest = hashlib.sha256(first).hexdigest()
    assert f"sha256sums=('{digest}')" in (tmp_path / "a" / "PKGBUILD").read_text().splitlines()
