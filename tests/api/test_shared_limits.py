"""The rate limiter's buckets and the sign-in throttle's failures in `SharedRecords`: the same answers as a
plain in-memory model, and the same limits for a client however many processes count it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.api.limits import Rate, RateLimiter
from cloud.api.serve import SharedLimits
from cloud.auth.throttle import LoginThrottle
from cloud.shared_records import SharedRecords

FORK = multiprocessing.get_context("fork")


class Now:
    def __init__(self, ms: int = 0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def reference_acquire(buckets: dict[str, tuple[float, int]], rate: Rate, client: str, now: int) -> int:
    """The token bucket as a plain dictionary: the specification the shared records must follow."""
    refill_per_ms = rate.count / (rate.period_s * 1000)
    tokens, counted = buckets.get(client, (float(rate.count), now))
    tokens = min(float(rate.count), tokens + (now - counted) * refill_per_ms)
    if tokens >= 1.0:
        buckets[client] = (tokens - 1.0, now)
        return 0
    buckets[client] = (tokens, now)
    return max(1, -int(-((1.0 - tokens) / refill_per_ms / 1000) // 1))


steps = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 30_000)), max_size=60)


@settings(max_examples=60, deadline=None)
@given(steps=steps, count=st.integers(1, 10))
def test_the_shared_buckets_answer_as_a_dictionary_would(steps: list[tuple[int, int]], count: int) -> None:
    rate = Rate(count, 60.0)
    now = Now()
    limiter = RateLimiter({"estimates": rate}, now, max_clients=256)
    model: dict[str, tuple[float, int]] = {}
    for client, advance_ms in steps:
        now.ms += advance_ms
        expected = reference_acquire(model, rate, f"10.0.0.{client}", now.ms)
        assert limiter.acquire("estimates", f"10.0.0.{client}") == expected


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["try", "ask", "succeed"]), st.integers(0, 3), st.integers(0, 400_000)),
        max_size=60,
    )
)
def test_the_shared_failures_answer_as_a_sliding_window_would(events: list[tuple[str, int, int]]) -> None:
    throttle = LoginThrottle(max_failures=3, window_ms=900_000, max_tracked=256)
    model: dict[str, deque[int]] = {}
    now = 0
    for what, user, advance_ms in events:
        now += advance_ms
        name = f"user{user}"
        recent = deque(ms for ms in model.get(name, ()) if ms > now - 900_000)
        waiting_s = 0 if len(recent) < 3 else max(1, -((now - recent[0] - 900_000) // 1000))
        if what == "try":
            if not waiting_s:
                recent.append(now)
            assert throttle.attempt(name, "10.0.0.1", now) == waiting_s
        elif what == "succeed":
            recent.clear()
            throttle.succeeded(name, "10.0.0.1", now)
        else:
            assert throttle.retry_after_s(name, "10.0.0.1", now) == waiting_s
        model[name] = recent


def _take_tokens(limits: SharedLimits, tries: int, granted: multiprocessing.Queue[int]) -> None:
    # A frozen clock: no token comes back while the processes race for them.
    limiter = RateLimiter({"estimates": Rate(50, 3600.0)}, lambda: 1_000, records=limits.rate_limits)
    granted.put(sum(limiter.acquire("estimates", "198.51.100.7") == 0 for _ in range(tries)))


def _fail_sign_ins(limits: SharedLimits, tries: int) -> None:
    throttle = LoginThrottle(records=limits.sign_in_failures)
    for attempt in range(tries):
        assert throttle.attempt("anna", "198.51.100.7", 1_000 + attempt) == 0


def _run_forked(target: Callable[..., None], *args: object, count: int = 1) -> list[int | None]:
    """Run ``target(*args)`` in ``count`` forked processes at once; their exit codes."""
    processes = [FORK.Process(target=target, args=args) for _ in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    return [process.exitcode for process in processes]


def test_processes_forked_after_the_buckets_grant_a_client_the_rate_once() -> None:
    limits = SharedLimits.create()
    granted: multiprocessing.Queue[int] = FORK.Queue()
    assert _run_forked(_take_tokens, limits, 200, granted, count=3) == [0, 0, 0]
    assert sum(granted.get(timeout=5) for _ in range(3)) == 50


def test_processes_forked_after_the_throttle_count_a_guesser_once() -> None:
    limits = SharedLimits.create()
    # Two processes, two failures each: four in all, one below the limit.
    assert _run_forked(_fail_sign_ins, limits, 2, count=2) == [0, 0]
    throttle = LoginThrottle(records=limits.sign_in_failures)
    assert throttle.attempt("anna", "198.51.100.7", 2_000) == 0
    assert throttle.attempt("anna", "198.51.100.7", 2_000) > 0
    assert throttle.attempt("anna", "203.0.113.9", 2_000) == 0


def _die_holding(records: SharedRecords) -> None:
    with records.locked():
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_process_killed_inside_the_lock_does_not_block_the_others() -> None:
    records = SharedRecords("q", 16)
    assert _run_forked(_die_holding, records) == [-signal.SIGKILL]
    started = time.monotonic()
    with records.locked():
        slot, _ = records.read("key")
        records.write(slot, "key", 1, (7,))
    assert time.monotonic() - started < 1.0
    assert records.read("key")[1] == (7,)


def test_a_full_neighbourhood_forgets_its_least_recently_used_key() -> None:
    records = SharedRecords("q", 4)
    with records.locked():
        for number, key in enumerate("abcd"):
            slot, _ = records.read(key)
            records.write(slot, key, 10 + number, (number,))
        for key, value in zip("abcd", range(4), strict=True):
            assert records.read(key)[1] == (value,)
        slot, found = records.read("e")
        assert found is None
        records.write(slot, "e", 20, (4,))
        assert records.read("a")[1] is None
        assert [records.read(key)[1] for key in "bcde"] == [(1,), (2,), (3,), (4,)]


@settings(max_examples=80, deadline=None)
@given(
    writes=st.lists(st.tuples(st.integers(0, 40), st.integers(-1000, 1000)), max_size=120),
    slots=st.integers(1, 24),
)
def test_a_key_reads_back_its_last_values_or_nothing_never_anothers(
    writes: list[tuple[int, int]], slots: int
) -> None:
    records = SharedRecords("q", slots)
    last: dict[str, int] = {}
    with records.locked():
        for used_ms, (key_number, value) in enumerate(writes):
            key = f"client-{key_number}"
            slot, _ = records.read(key)
            records.write(slot, key, used_ms, (value,))
            last[key] = value
            # The key just written is always found.
            assert records.read(key)[1] == (value,)
        for key, value in last.items():
            assert records.read(key)[1] in (None, (value,))
