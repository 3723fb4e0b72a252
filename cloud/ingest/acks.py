"""Acknowledgements in the order the messages came, from writers that finish out of order.

MQTT asks a client to send its PUBACKs in the order in which the PUBLISH packets were received (MQTT 5.0,
4.6, [MQTT-4.6.0-2]). An ingest process with more than one writer thread stores batches side by side, and a
later batch may commit first: its acknowledgements wait until every batch taken before it is acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class InOrder(Generic[T]):
    """Numbers batches as they are taken (`take`) and passes each stored batch to ``send`` (`done`) once
    every batch taken before it has been passed on too.

    A batch that was not stored (the ingest stops while the database is away) holds back every later one for
    good: their messages stay unacknowledged and the broker sends them again when the session resumes
    (storage is idempotent), rather than being acknowledged past one that was not.
    """

    def __init__(self, send: Callable[[T], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._taken = 0
        self._next = 0
        self._finished: dict[int, T | None] = {}
        self._held_back = False

    def take(self) -> int:
        """The number of the next batch; callers take batches one at a time, in the messages' order."""
        with self._lock:
            number = self._taken
            self._taken += 1
            return number

    def done(self, number: int, batch: T | None) -> None:
        """Batch ``number`` is stored (``batch``) or will not be (None); send what is now in order."""
        with self._lock:
            self._finished[number] = batch
            while self._next in self._finished:
                ready = self._finished.pop(self._next)
                self._next += 1
                if ready is None:
                    self._held_back = True
                elif not self._held_back:
                    # Under the lock: two writers' sends must not overtake each other either.
                    self._send(ready)
