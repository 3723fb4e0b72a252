"""Small fixed-size records that every process of one API serves from: the rate limiter's buckets and the
sign-in throttle's failures, so that N processes allow a client what one would, not N times as much.

The records live in an unnamed file (in ``/dev/shm`` when there is one, so nothing is written to a disk)
mapped shared into memory: processes forked after they were made use the same memory, and the file is gone
with the last of them — nothing is left behind however they end. Every read and change happens under
`SharedRecords.locked`: a POSIX record lock on the file, which the kernel releases when its holder dies (a
process killed inside the lock cannot block the others), and a thread lock, because POSIX locks do not
exclude threads of one process.

A record is found by a 64-bit fingerprint of its key among ``PROBE`` consecutive slots from the
fingerprint's home slot. When those are all taken by other keys, the least recently used of them is
overwritten: a table of ``slots`` records remembers at least the ``slots / PROBE`` most recent keys and
forgets an old one only when it is full around the new one's place — as a bounded in-memory table would.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

# Slots searched for a key from its home slot.
PROBE = 8
# Each record starts with the key's fingerprint (0: an empty slot) and when it was last written [ms].
_HEAD = struct.Struct("=Qq")
_SHARED_MEMORY = Path("/dev/shm")


def fingerprint(key: str) -> int:
    """A key's 64-bit fingerprint, the same in every process (unlike ``hash``), never 0."""
    value = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return value or 1


class SharedRecords:
    """``slots`` records of ``values`` (a `struct` format of fixed size) keyed by strings, shared with the
    processes forked after it was made."""

    def __init__(self, values: str, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._values = struct.Struct("=" + values)
        self._record_bytes = _HEAD.size + self._values.size
        self.slots = slots
        size = slots * self._record_bytes
        # Open as long as the records are: closing it would also release this process's lock on it.
        self._file = tempfile.TemporaryFile(dir=_SHARED_MEMORY if _SHARED_MEMORY.is_dir() else None)  # noqa: SIM115
        os.ftruncate(self._file.fileno(), size)
        self._memory = mmap.mmap(self._file.fileno(), size)
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the records for this thread of this process; every `read` and `write` happens inside."""
        with self._thread_lock, self._file_lock():
            yield

    def read(self, key: str) -> tuple[int, tuple[float | int, ...] | None]:
        """The slot of ``key`` and its values; or, when it has none, the slot it would take and None."""
        wanted = fingerprint(key)
        home = wanted % self.slots
        oldest_slot, oldest_ms = home, None
        for step in range(min(PROBE, self.slots)):
            slot = (home + step) % self.slots
            offset = slot * self._record_bytes
            found, used_ms = _HEAD.unpack_from(self._memory, offset)
            if found == wanted:
                return slot, self._values.unpack_from(self._memory, offset + _HEAD.size)
            if found == 0:
                return slot, None
            if oldest_ms is None or used_ms < oldest_ms:
                oldest_slot, oldest_ms = slot, used_ms
        return oldest_slot, None

    def write(self, slot: int, key: str, used_ms: int, values: tuple[float | int, ...]) -> None:
        """Put ``key``'s values in ``slot`` (from `read` under the same lock), used at ``used_ms``."""
        offset = slot * self._record_bytes
        _HEAD.pack_into(self._memory, offset, fingerprint(key), used_ms)
        self._values.pack_into(self._memory, offset + _HEAD.size, *values)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fcntl.lockf(self._file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._file.fileno(), fcntl.LOCK_UN)
