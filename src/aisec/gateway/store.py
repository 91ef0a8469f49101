"""Shared counters, flags and bounded lists for the gateway.

The gateway and its monitors keep state that every replica must see (alert actions on a key,
sliding windows of recent queries, counters) in a :class:`Store`. :class:`MemoryStore` serves a
single process; :class:`RedisStore` lets several replicas share one Redis server.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Protocol, runtime_checkable

from aisec.errors import ConfigError, MissingDependencyError


@runtime_checkable
class Store(Protocol):
    """Key-value state shared by the gateway and its monitors."""

    def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Add ``amount`` to an integer counter and return the new value.

        ``ttl_s`` sets the expiry when the counter is created (a fixed window), not on every call.
        """
        ...

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        ...

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``, expiring after ``ttl_s`` seconds when given."""
        ...

    def push(self, key: str, value: bytes, maxlen: int) -> None:
        """Append ``value`` to the list ``key``, keeping only the newest ``maxlen`` items."""
        ...

    def push_many(self, key: str, values: list[bytes], maxlen: int) -> None:
        """Append ``values`` to the list ``key`` in one atomic step, keeping the newest ``maxlen`` items."""
        ...

    def items(self, key: str) -> list[bytes]:
        """The list ``key``, oldest first (empty when absent)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` whatever it holds."""
        ...


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int):
        return str(value).encode()
    raise TypeError(f"store values are bytes, got {type(value).__name__}")


class MemoryStore:
    """A thread-safe in-process :class:`Store` (one gateway process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, bytes] = {}
        self._lists: dict[str, deque[bytes]] = {}
        self._expiry: dict[str, float] = {}

    def _expired(self, key: str) -> None:
        deadline = self._expiry.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            self._values.pop(key, None)
            self._lists.pop(key, None)
            self._expiry.pop(key, None)

    def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        with self._lock:
            self._expired(key)
            current = self._values.get(key)
            value = (int(current) if current is not None else 0) + int(amount)
            self._values[key] = str(value).encode()
            if current is None and ttl_s is not None:
                self._expiry[key] = time.monotonic() + float(ttl_s)
            return value

    def get(self, key: str) -> bytes | None:
        with self._lock:
            self._expired(key)
            return self._values.get(key)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        data = _to_bytes(value)
        with self._lock:
            self._values[key] = data
            if ttl_s is not None:
                self._expiry[key] = time.monotonic() + float(ttl_s)
            else:
                self._expiry.pop(key, None)

    def push(self, key: str, value: bytes, maxlen: int) -> None:
        self.push_many(key, [value], maxlen)

    def push_many(self, key: str, values: list[bytes], maxlen: int) -> None:
        if maxlen < 1:
            raise ConfigError(f"maxlen must be >= 1, got {maxlen}")
        data = [_to_bytes(v) for v in values]
        with self._lock:
            self._expired(key)
            items = self._lists.get(key)
            if items is None or items.maxlen != maxlen:
                items = deque(items or (), maxlen=maxlen)
                self._lists[key] = items
            items.extend(data)

    def items(self, key: str) -> list[bytes]:
        with self._lock:
            self._expired(key)
            return list(self._lists.get(key, ()))

    def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)
            self._lists.pop(key, None)
            self._expiry.pop(key, None)


class RedisStore:
    """A :class:`Store` on a Redis server, shared by every gateway replica.

    Parameters
    ----------
    url:
        ``redis://host:port/db`` (or ``rediss://``).
    prefix:
        Prepended to every key, so several gateways can share one server.
    """

    def __init__(self, url: str, *, prefix: str = "aisec:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - redis is in the gateway extra
            raise MissingDependencyError("redis", "gateway") from exc
        self.url = url
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        k = self._k(key)
        pipe = self._client.pipeline()
        pipe.incrby(k, int(amount))
        if ttl_s is not None:
            # NX: only when the counter has no expiry yet, so the window stays fixed.
            pipe.pexpire(k, max(1, int(float(ttl_s) * 1000)), nx=True)
        result = pipe.execute()
        return int(result[0])

    def get(self, key: str) -> bytes | None:
        value = self._client.get(self._k(key))
        return bytes(value) if value is not None else None

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        data = _to_bytes(value)
        if ttl_s is not None:
            self._client.set(self._k(key), data, px=max(1, int(float(ttl_s) * 1000)))
        else:
            self._client.set(self._k(key), data)

    def push(self, key: str, value: bytes, maxlen: int) -> None:
        self.push_many(key, [value], maxlen)

    def push_many(self, key: str, values: list[bytes], maxlen: int) -> None:
        if maxlen < 1:
            raise ConfigError(f"maxlen must be >= 1, got {maxlen}")
        if not values:
            return
        k = self._k(key)
        pipe = self._client.pipeline()  # MULTI/EXEC: append and trim as one transaction
        pipe.rpush(k, *(_to_bytes(v) for v in values))
        pipe.ltrim(k, -int(maxlen), -1)
        pipe.execute()

    def items(self, key: str) -> list[bytes]:
        return [bytes(v) for v in self._client.lrange(self._k(key), 0, -1)]

    def delete(self, key: str) -> None:
        self._client.delete(self._k(key))

    def ping(self) -> bool:
        """Whether the server answers."""
        try:
            return bool(self._client.ping())
        except Exception:  # any failure means "not ready"
            return False

    def close(self) -> None:
        self._client.close()


def _backend_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    try:
        import redis
    except ImportError:  # pragma: no cover
        return errors
    return (*errors, redis.RedisError)


#: What a store or limit backend raises when it is unreachable (the gateway answers 503).
BACKEND_ERRORS = _backend_errors()


def open_store(url: str | None) -> Store:
    """``None`` or ``memory://`` gives a :class:`MemoryStore`; ``redis://...`` a :class:`RedisStore`."""
    if url is None or url in ("", "memory://", "memory"):
        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    raise ConfigError(f"store: unknown URL scheme in {url!r}; use memory:// or redis://host:port/db")


__all__ = ["BACKEND_ERRORS", "MemoryStore", "RedisStore", "Store", "open_store"]
