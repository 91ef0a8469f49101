"""Query budgets: charge, refuse without charging, unlimited, thread safe."""

from __future__ import annotations

import threading
import time

import pytest

from aisec.core.budget import QueryBudget
from aisec.errors import BudgetExceededError, ConfigError


def test_charge_counts_queries() -> None:
    b = QueryBudget(100)
    b.charge(30)
    b.charge(70)
    assert (b.used, b.remaining) == (100, 0)
    assert b.can_afford(0)
    assert not b.can_afford(1)


def test_refusal_charges_nothing_and_says_how_much() -> None:
    b = QueryBudget(10)
    b.charge(8)
    with pytest.raises(BudgetExceededError) as info:
        b.charge(3)
    assert (info.value.limit, info.value.used, info.value.requested) == (10, 8, 3)
    assert "8 of 10" in str(info.value)
    assert b.used == 8
    b.charge(2)  # what is left can still be spent
    assert b.used == 10


def test_zero_limit_allows_zero_queries_only() -> None:
    b = QueryBudget(0)
    b.charge(0)
    with pytest.raises(BudgetExceededError):
        b.charge(1)
    assert b.used == 0


def test_unlimited_budget() -> None:
    b = QueryBudget(None)
    b.charge(10**9)
    b.charge(10**9)
    assert b.used == 2 * 10**9
    assert b.remaining is None
    assert b.can_afford(10**12)


@pytest.mark.parametrize("limit", [-1, 1.5, True, "100"])
def test_invalid_limit_is_a_config_error(limit: object) -> None:
    with pytest.raises(ConfigError, match="query_budget"):
        QueryBudget(limit)  # type: ignore[arg-type]


def test_negative_charge_is_refused() -> None:
    b = QueryBudget(10)
    with pytest.raises(ConfigError):
        b.charge(-1)
    assert b.used == 0


class _Yielding(int):
    """A query count whose addition lets other threads run: a check-then-add race would show."""

    def __radd__(self, other: int) -> int:
        time.sleep(0)
        return int(other) + int(self)


def _hammer(budget: QueryBudget, n_threads: int, per_thread: int) -> tuple[int, int]:
    """Charge one query at a time from many threads at once; return (successes, refusals)."""
    ok = [0] * n_threads
    refused = [0] * n_threads
    start = threading.Barrier(n_threads)

    def work(i: int) -> None:
        start.wait()
        for _ in range(per_thread):
            try:
                budget.charge(_Yielding(1))
                ok[i] += 1
            except BudgetExceededError:
                refused[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(ok), sum(refused)


def test_threads_never_overspend_and_every_query_is_counted() -> None:
    b = QueryBudget(2_000)
    ok, refused = _hammer(b, n_threads=8, per_thread=400)
    assert ok == 2_000
    assert refused == 1_200
    assert b.used == 2_000


def test_threads_on_an_unlimited_budget_lose_no_count() -> None:
    b = QueryBudget(None)
    ok, refused = _hammer(b, n_threads=8, per_thread=400)
    assert (ok, refused, b.used) == (3_200, 0, 3_200)
