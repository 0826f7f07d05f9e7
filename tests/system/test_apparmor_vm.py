"""The AppArmor profile enforced for real: this machine's kernel has no
AppArmor, so a VM (qemu, software emulation) boots Debian's kernel with
``apparmor=1 security=apparmor`` from a disk image of the same root file
system as the container test, on each release with the package built on it
(conftest.py). Inside, vm-scenario.sh installs the .deb (its
postinst loads the profile in enforce mode) and runs the service through
start, SIGUSR1, replies and stop; there must be no denial at all.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from prereq import require_root, require_tool

import rootfs
from helpers import ROOT

HERE = Path(__file__).resolve().parent

SCENARIO_UNIT = """[Unit]
Description=mping-sender AppArmor scenario
After=multi-user.target apparmor.service
[Service]
Type=oneshot
ExecStart=/bin/sh /root/mping/vm-scenario.sh
[Install]
WantedBy=multi-user.target
"""
BOOT_TIMEOUT = 900  # seconds: software emulation on a loaded 2-core machine


def disk_image(root: Path, extra: Path, image: Path) -> None:
    """An ext4 image of the cached root with the scenario laid over it (an
    overlay mount, so the cache is never written)."""
    merged, upper, work = (image.parent / name for name in ("merged", "upper", "work"))
    for directory in (merged, upper, work):
        directory.mkdir()
    shutil.copytree(extra, upper / "root" / "mping")
    wants = upper / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (upper / "etc/systemd/system/mping-vm-scenario.service").write_text(SCENARIO_UNIT)
    (wants / "mping-vm-scenario.service").symlink_to("../mping-vm-scenario.service")
    (upper / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={root},upperdir={upper},workdir={work}", str(merged)], check=True)
    try:
        subprocess.run(["truncate", "-s", "3G", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(merged), str(image)], check=True, timeout=600)
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def boot(root: Path, image: Path, console: Path) -> float:
    """Boot the VM until it powers itself off; the seconds it took."""
    kernel = max(root.glob("boot/vmlinuz-*"))
    initrd = root / "boot" / kernel.name.replace("vmlinuz", "initrd.img")
    started = time.monotonic()
    subprocess.run(["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "1024",
                    "-kernel", str(kernel), "-initrd", str(initrd),
                    "-append", "root=/dev/vda rw console=ttyS0 apparmor=1 security=apparmor panic=-1",
                    "-drive", f"file={image},format=raw,if=virtio", "-nic", "none", "-no-reboot",
                    "-display", "none", "-monitor", "none", "-serial", f"file:{console}"],
                   check=True, timeout=BOOT_TIMEOUT, stdin=subprocess.DEVNULL)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def result(release, deb, tmp_path_factory) -> dict:
    require_root()
    for tool in ("mmdebstrap", "qemu-system-x86_64", "mkfs.ext4", "dpkg-deb"):
        require_tool(tool)
    scratch = tmp_path_factory.mktemp(f"vm-{release}")
    root = rootfs.ensure(release)
    extra = scratch / "mping"
    extra.mkdir()
    shutil.copy(deb, extra / "current.deb")
    shutil.copy(ROOT / "tools" / "reflector.py", extra)
    shutil.copy(HERE / "vm-scenario.sh", extra)
    started = time.monotonic()
    disk_image(root, extra, scratch / "disk.img")
    print(f"\n{release}: disk image made in {time.monotonic() - started:.1f} s")
    console = scratch / "console"
    seconds = boot(root, scratch / "disk.img", console)
    text = console.read_text(errors="replace")
    print(f"{release}: VM boot, scenario and power-off: {seconds:.0f} s")
    print("\n".join(line for line in text.splitlines() if "mping-vm:" in line))
    found = re.search(r"MPING-VM-RESULT (\{.*\})", text)
    assert found, text[-5000:]
    return json.loads(found.group(1))


def test_profile_is_loaded_in_enforce_mode_and_confines_the_service(result):
    assert "error" not in result, result
    print(f"kernel {result['kernel']}: profile {result['profile_mode']}, process {result['confinement']}")
    assert result["profile_mode"] == "enforce"
    assert result["confinement"] == "mping-sender (enforce)"


def test_a_full_run_has_no_denial(result):
    assert result["denied"] == 0, result


def test_the_run_under_the_profile_did_everything(result):
    assert re.fullmatch(r"sandbox: no_new_privs=on securebits=locked caps=0 landlock=abi\d+\(\S+\) "
                        r"seccomp=deny\+allow mdwe=(prctl|seccomp)", result["sandbox"]), result
    assert re.search(r" 1 receivers, [1-9]\d* replies", result["totals"]), result
    assert re.match(r"summary: [1-9]\d* sent, 0 failed", result["summary"]), result
    assert result["metrics"] == "200 1", result  # served under the profile, the reflector among the receivers
