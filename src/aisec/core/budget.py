"""Query budgets: every query an attacker sends to a target is counted against one."""

from __future__ import annotations

import threading

from aisec.errors import BudgetExceededError, ConfigError


class QueryBudget:
    """A thread-safe count of queries against an optional limit.

    A query is one input sent to the target's prediction API (a batch of 32 inputs costs 32).
    ``limit=None`` means unlimited. :meth:`charge` raises :class:`BudgetExceededError` *before*
    the queries are sent when they would exceed the limit, and charges nothing in that case.
    """

    __slots__ = ("_lock", "_used", "limit")

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"query_budget: expected a non-negative integer or None, got {limit!r}")
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Queries charged so far."""
        return self._used

    @property
    def remaining(self) -> int | None:
        """Queries left, or ``None`` when the budget is unlimited."""
        return None if self.limit is None else self.limit - self._used

    def can_afford(self, n: int) -> bool:
        """Whether ``n`` more queries fit in the budget."""
        return self.limit is None or self._used + n <= self.limit

    def charge(self, n: int) -> None:
        """Count ``n`` queries, or raise :class:`BudgetExceededError` without counting them."""
        if n < 0:
            raise ConfigError(f"n: expected a non-negative number of queries, got {n}")
        with self._lock:
            if self.limit is not None and self._used + n > self.limit:
                raise BudgetExceededError(self.limit, self._used, n)
            self._used += n

    def refund(self, n: int) -> None:
        """Give back ``n`` queries charged for a request the target refused before answering."""
        with self._lock:
            self._used = max(0, self._used - n)

    def __repr__(self) -> str:
        return f"QueryBudget(limit={self.limit}, used={self._used})"
