"""Rate limits and query budgets per API key, on the ``limits`` library.

Request rates (per second, per minute) use a moving window; the daily query budget uses a fixed
window whose cost is the batch size, and a refused batch is refunded so that it does not eat the
rest of the budget. With ``redis://`` storage every gateway replica shares the same counts
(the increments are atomic Lua scripts on the server).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from aisec.gateway.settings import RateLimits


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused, and when to try again."""

    rule: str
    retry_after_s: int


class Limiter:
    """Checks the limits of :class:`RateLimits` for one key at a time."""

    def __init__(self, storage_url: str | None = None, *, namespace: str = "aisec-gw") -> None:
        url = storage_url or "memory://"
        if url.startswith("memory"):
            url = "memory://"
        self._storage = storage_from_string(url)
        self._moving = MovingWindowRateLimiter(self._storage)
        self._fixed = FixedWindowRateLimiter(self._storage)
        self._ns = namespace

    def _retry(self, limiter: MovingWindowRateLimiter | FixedWindowRateLimiter, item: RateLimitItem, key: str) -> int:
        stats = limiter.get_window_stats(item, self._ns, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def check_rate(self, key_id: str, limits: RateLimits, *, throttled: bool = False) -> Refusal | None:
        """Count one request; a :class:`Refusal` when a request-rate limit is already reached."""
        items: list[tuple[str, RateLimitItem]] = []
        if limits.per_second:
            items.append(("per_second", RateLimitItemPerSecond(limits.per_second)))
        if limits.per_minute:
            items.append(("per_minute", RateLimitItemPerMinute(limits.per_minute)))
        if throttled:
            items.append(("throttled", RateLimitItemPerMinute(limits.throttled_per_minute, namespace="THROTTLE")))
        for rule, item in items:
            if not self._moving.hit(item, self._ns, key_id):
                return Refusal(rule, self._retry(self._moving, item, key_id))
        return None

    def charge(self, key_id: str, limits: RateLimits, cost: int) -> Refusal | None:
        """Charge ``cost`` inputs to the daily budget; refused (and refunded) when it would overrun."""
        if not limits.queries_per_day:
            return None
        item = RateLimitItemPerDay(limits.queries_per_day, namespace="BUDGET")
        if self._fixed.hit(item, self._ns, key_id, cost=cost):
            return None
        # Refund: a refused batch must not spend what is left of the budget.
        self._storage.incr(item.key_for(self._ns, key_id), item.get_expiry(), amount=-cost)
        return Refusal("queries_per_day", self._retry(self._fixed, item, key_id))

    def used(self, key_id: str, limits: RateLimits) -> tuple[int, int] | None:
        """``(used, limit)`` of the daily budget, or ``None`` when there is none."""
        if not limits.queries_per_day:
            return None
        item = RateLimitItemPerDay(limits.queries_per_day, namespace="BUDGET")
        stats = self._fixed.get_window_stats(item, self._ns, key_id)
        return limits.queries_per_day - stats.remaining, limits.queries_per_day


__all__ = ["Limiter", "Refusal"]
