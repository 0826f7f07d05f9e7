"""The C library, loaded once with errno capture, and every libc function
this program calls through ctypes, declared here with its C types.

Each declaration is a function object of its own (``libc[name]`` makes a
new one each time), so typing one changes no other user of the symbol:
syscall(2), which is variadic, has one typed object per call shape.
"""

from __future__ import annotations

import ctypes
import os
import struct

# A fixed soname: ctypes.util.find_library would spawn ldconfig at start-up.
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _declare(symbol: str, restype, *argtypes):
    """A typed function object for one libc symbol."""
    function = libc[symbol]
    function.restype = restype
    function.argtypes = list(argtypes)
    return function


_prctl = _declare("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                  ctypes.c_ulong)
# capget/capset(cap_user_header_t, cap_user_data_t)
capget = _declare("capget", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
capset = _declare("capset", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# syscall(SYS_landlock_create_ruleset, attr, size, flags) and
# syscall(SYS_landlock_restrict_self, ruleset_fd, flags): glibc has no wrappers.
landlock_create_ruleset = _declare("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_size_t,
                                   ctypes.c_uint32)
landlock_restrict_self = _declare("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_uint32)


def check(result: int, what: str) -> int:
    """Raise OSError with errno when a libc call returned -1."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); raises OSError with errno on failure."""
    return check(_prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1


# timerfd_create(clockid, flags) and timerfd_settime(fd, flags, new_value, old_value); the values are
# struct itimerspec (ITIMERSPEC), passed by address: packed in place, arming builds no ctypes objects.
timerfd_create = _declare("timerfd_create", ctypes.c_int, ctypes.c_int, ctypes.c_int)
timerfd_settime = _declare("timerfd_settime", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                           ctypes.c_void_p)
ITIMERSPEC = struct.Struct("@4l")  # it_interval (tv_sec, tv_nsec), it_value (tv_sec, tv_nsec)

# accept4(sockfd, addr, addrlen, flags): the metrics endpoint's connections, non-blocking and
# close-on-exec as they are made (socket.accept would need fcntl or ioctl afterwards, outside the sandbox).
accept4 = _declare("accept4", ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
