#!/usr/bin/env python3
"""Build mping-sender-VERSION.pyz: the package in one executable zip (the
standard library's zipapp) for hosts without the package.

Reproducible byte for byte from the same tree: members in sorted order, a
fixed timestamp and mode, and stored rather than deflated, because deflate
streams differ between zlib builds (zlib-ng); the source is 100 kB.
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import re
import zipapp
import zipfile
from typing import List, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "mping_sender"
INTERPRETER = "/usr/bin/env python3"
TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: no build time in the file
MODE = 0o100644  # a regular file, rw-r--r--


def version(root: pathlib.Path) -> str:
    """__version__ from the package's __init__.py, read without importing it."""
    text = (root / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no __version__ in {root / PACKAGE / '__init__.py'}")
    return match.group(1)


def members(root: pathlib.Path) -> List[Tuple[str, bytes]]:
    """The archive's files in order: the package's own __main__.py at the top
    (the same entry point as ``python3 -m mping_sender``), then every module."""
    names = sorted(path.relative_to(root).as_posix() for path in (root / PACKAGE).rglob("*.py"))
    return [("__main__.py", (root / PACKAGE / "__main__.py").read_bytes())] + \
        [(name, (root / name).read_bytes()) for name in names]


def archive(files: List[Tuple[str, bytes]]) -> bytes:
    """A zip of files with nothing from the build host in it (time, mode, order)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, TIMESTAMP)
            info.external_attr = MODE << 16
            zf.writestr(info, data)
    return buffer.getvalue()


def build(root: pathlib.Path, output_dir: pathlib.Path) -> pathlib.Path:
    """Write output_dir/mping-sender-VERSION.pyz (mode 0755); return its path."""
    target = output_dir / f"mping-sender-{version(root)}.pyz"
    zipapp.create_archive(io.BytesIO(archive(members(root))), target, INTERPRETER)
    os.chmod(target, 0o755)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=pathlib.Path, default=ROOT, help="where to write (default: the tree)")
    print(build(ROOT, parser.parse_args().output_dir))


if __name__ == "__main__":
    main()
