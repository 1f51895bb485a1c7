"""bench/baseline.py's shared event budget: N parallel senders together send at most --max-events."""

from __future__ import annotations

import threading

from bench.baseline import Budget


def test_parallel_senders_together_take_exactly_the_budget() -> None:
    budget = Budget(1_000)
    taken = [0] * 4

    def sender(i: int) -> None:
        while budget.take():
            taken[i] += 1

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 1_000
    assert budget.spent()
    assert not budget.take()


def test_a_fresh_budget_is_not_spent() -> None:
    assert not Budget(1).spent()
    assert Budget(0).spent()
