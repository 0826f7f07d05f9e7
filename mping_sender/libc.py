"""The C library, loaded once through ctypes with errno capture."""

from __future__ import annotations

import ctypes
import os

# A fixed soname: ctypes.util.find_library would spawn ldconfig at start-up.
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def check(result: int, what: str) -> int:
    """Raise OSError with errno when a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result
