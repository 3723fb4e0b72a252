"""Acknowledgements leave in the order the batches were taken, whatever order the writers finish in; nothing
is acknowledged past a batch that was not stored."""

from __future__ import annotations

import random
import threading

from hypothesis import given
from hypothesis import strategies as st

from cloud.ingest.acks import InOrder


@st.composite
def finishing(draw: st.DrawFn) -> tuple[list[int], set[int]]:
    """The order in which some batches finish, and which of them were not stored."""
    count = draw(st.integers(0, 30))
    order = draw(st.permutations(list(range(count))))
    failed = draw(st.sets(st.sampled_from(order))) if count else set()
    return order, failed


@given(finishing())
def test_batches_are_sent_in_the_order_taken_up_to_the_first_not_stored(
    finished: tuple[list[int], set[int]],
) -> None:
    order, failed = finished
    sent: list[int] = []
    acks = InOrder[int](sent.append)
    assert [acks.take() for _ in order] == sorted(order)
    for number in order:
        acks.done(number, None if number in failed else number)
    first_failed = min(failed, default=len(order))
    assert sent == list(range(first_failed))


def test_writers_finishing_at_once_send_in_order() -> None:
    sent: list[int] = []
    acks = InOrder[int](sent.append)
    numbers = [acks.take() for _ in range(400)]
    random.Random(7).shuffle(numbers)
    shares = [numbers[i::4] for i in range(4)]
    start = threading.Barrier(4)

    def writer(share: list[int]) -> None:
        start.wait()
        for number in share:
            acks.done(number, number)

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sent == list(range(400))
