"""Whether the system clock can be trusted yet, and which boot the monotonic clock counts from.

A Raspberry Pi has no battery clock: until NTP has set it, the time is what ``fake-hwclock`` restored at boot,
hours behind after a power cut. The kernel knows: ``adjtimex`` answers ``TIME_ERROR`` while the clock is not
synchronised (the state systemd-timesyncd, chrony and ntpd all clear). Readings taken meanwhile are held with
their monotonic time and stamped when the clock is set (`edge.outbox.Outbox.hold`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from pathlib import Path

# adjtimex's answer for a clock that is not synchronised (linux/timex.h).
TIME_ERROR = 5
# struct timex: 208 bytes on 64-bit Linux, fewer on 32-bit; a larger zeroed buffer (modes 0: read only).
_TIMEX_BYTES = 512
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def kernel_clock_synchronized() -> bool:
    """Whether the kernel counts its clock as synchronised; True where it cannot say (not Linux)."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return True
    return bool(adjtimex(ctypes.create_string_buffer(_TIMEX_BYTES)) != TIME_ERROR)


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    # Looked up once: finding the C library runs ldconfig, and the agent asks at every poll.
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function: Callable[[ctypes.Array[ctypes.c_char]], int] = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    return function


def boot_id() -> str:
    """This boot's identity: a monotonic time means nothing in another boot."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""
