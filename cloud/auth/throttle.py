"""Slowing down password guessing: after a few failed sign-ins for one username from one address, that pair
must wait. In-process state: each API process counts its own failures (see docs/auth.md)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque

MAX_FAILURES = 5
WINDOW_MS = 15 * 60 * 1000
# Pairs remembered at most; the least recently failed are forgotten first.
MAX_TRACKED = 50_000


class LoginThrottle:
    """Counts failed sign-ins per (username, address) over a sliding window.

    After ``max_failures`` failures within ``window_ms`` the pair is refused until the oldest of them leaves
    the window; a success clears the pair.
    """

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_ms: int = WINDOW_MS, max_tracked: int = MAX_TRACKED
    ) -> None:
        self.max_failures = max_failures
        self.window_ms = window_ms
        self.max_tracked = max_tracked
        self._failures: OrderedDict[tuple[str, str], deque[int]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after_s(self, username: str, client_ip: str, now_ms: int) -> int:
        """0 if the pair may try now, else how many seconds it must wait."""
        with self._lock:
            failures = self._recent(username, client_ip, now_ms)
            if failures is None or len(failures) < self.max_failures:
                return 0
            return max(1, math.ceil((failures[0] + self.window_ms - now_ms) / 1000))

    def failed(self, username: str, client_ip: str, now_ms: int) -> bool:
        """Count a failure; True if the pair is now refused."""
        with self._lock:
            key = (username, client_ip)
            failures = self._recent(username, client_ip, now_ms)
            if failures is None:
                failures = self._failures[key] = deque(maxlen=self.max_failures)
            failures.append(now_ms)
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)
            return len(failures) >= self.max_failures

    def succeeded(self, username: str, client_ip: str) -> None:
        with self._lock:
            self._failures.pop((username, client_ip), None)

    def _recent(self, username: str, client_ip: str, now_ms: int) -> deque[int] | None:
        failures = self._failures.get((username, client_ip))
        if failures is None:
            return None
        while failures and failures[0] <= now_ms - self.window_ms:
            failures.popleft()
        return failures
