"""Slowing down password guessing: after a few failed sign-ins for one username from one address, that pair
must wait. The failures are counted in `SharedRecords`, which every API process shares (`cloud.api.serve`):
a guesser gets the same few tries however many processes serve it."""

from __future__ import annotations

import math

from cloud.shared_records import SharedRecords

MAX_FAILURES = 5
WINDOW_MS = 15 * 60 * 1000
# Pairs remembered at most; the least recently failed are forgotten first.
MAX_TRACKED = 50_000


def throttle_records(max_failures: int = MAX_FAILURES, max_tracked: int = MAX_TRACKED) -> SharedRecords:
    """A table for `LoginThrottle`'s failures, shared with the processes forked after it is made. Each
    record: how many failures, then their times [ms], oldest first."""
    return SharedRecords("q" * (1 + max_failures), max_tracked)


class LoginThrottle:
    """Counts failed sign-ins per (username, address) over a sliding window.

    After ``max_failures`` failures within ``window_ms`` the pair is refused until the oldest of them leaves
    the window; a success clears the pair. A try counts as a failure from its start (`attempt`).
    """

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_ms: int = WINDOW_MS,
        max_tracked: int = MAX_TRACKED,
        records: SharedRecords | None = None,
    ) -> None:
        self.max_failures = max_failures
        self.window_ms = window_ms
        self._failures = records if records is not None else throttle_records(max_failures, max_tracked)

    def retry_after_s(self, username: str, client_ip: str, now_ms: int) -> int:
        """0 if the pair may try now, else how many seconds it must wait."""
        with self._failures.locked():
            _, failures = self._recent(_key(username, client_ip), now_ms)
        if len(failures) < self.max_failures:
            return 0
        return max(1, math.ceil((failures[0] + self.window_ms - now_ms) / 1000))

    def attempt(self, username: str, client_ip: str, now_ms: int) -> int:
        """Let the pair try, counting the try as a failure until it `succeeded`: 0; or, if it must wait, the
        seconds it must wait (the try is not counted). Checking and counting at once, so that guesses sent in
        parallel (to one process or several) cannot all pass the check before any of them has failed."""
        key = _key(username, client_ip)
        with self._failures.locked():
            slot, failures = self._recent(key, now_ms)
            if len(failures) >= self.max_failures:
                return max(1, math.ceil((failures[0] + self.window_ms - now_ms) / 1000))
            self._write(slot, key, now_ms, [*failures, now_ms])
        return 0

    def succeeded(self, username: str, client_ip: str, now_ms: int) -> None:
        key = _key(username, client_ip)
        with self._failures.locked():
            slot, failures = self._recent(key, now_ms)
            if failures:
                self._write(slot, key, now_ms, [])

    def _recent(self, key: str, now_ms: int) -> tuple[int, list[int]]:
        """The pair's slot and its failures still in the window, oldest first."""
        slot, record = self._failures.read(key)
        if record is None:
            return slot, []
        count = int(record[0])
        times = [int(ms) for ms in record[1 : 1 + count]]
        return slot, [ms for ms in times if ms > now_ms - self.window_ms]

    def _write(self, slot: int, key: str, now_ms: int, failures: list[int]) -> None:
        padding = [0] * (self.max_failures - len(failures))
        self._failures.write(slot, key, now_ms, (len(failures), *failures, *padding))


def _key(username: str, client_ip: str) -> str:
    return f"{username}\n{client_ip}"
