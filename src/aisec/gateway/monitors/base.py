"""Shared pieces of the gateway's monitors: alerts, the monitor protocol, the registry and state helpers.

A monitor watches one API key's traffic (queries, model outputs, latencies) and returns
:class:`Alert` objects; the gateway's policy turns an alert's ``action`` into a response
(``log``, ``label-only``, ``throttle``, ``block``). Monitors keep no state in the process: every
window, growing set and counter lives in the gateway's store (the in-memory store, or Redis when
several replicas share the traffic), as small float32 arrays serialized with ``ndarray.tobytes``
and pushed into capped lists, so memory per key is bounded by each monitor's ``maxlen`` settings.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol, TypeVar, get_args, runtime_checkable

import numpy as np

from aisec.errors import ConfigError, InputValidationError

Action = Literal["log", "label-only", "throttle", "block"]
ACTIONS: tuple[str, ...] = get_args(Action)
Inputs = np.ndarray | list[str]

#: Width of the hashed bag-of-n-grams vector a text query becomes for distance-based monitors.
TEXT_DIM = 256


@dataclass(frozen=True)
class Alert:
    """One finding of a monitor about one key: what fired, how strongly, and what to do."""

    monitor: str
    key_id: str
    score: float
    message: str
    action: Action


class StoreLike(Protocol):
    """The part of :class:`aisec.gateway.store.Store` the monitors use."""

    def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int: ...
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...
    def push(self, key: str, value: bytes, maxlen: int) -> None: ...
    def push_many(self, key: str, values: list[bytes], maxlen: int) -> None: ...
    def items(self, key: str) -> list[bytes]: ...


@runtime_checkable
class Monitor(Protocol):
    """Watches the traffic of each key; ``observe`` is called once per answered request."""

    name: str

    def observe(self, key_id: str, x: Inputs, probs: np.ndarray, latency_s: float) -> list[Alert]:
        """Record one request (a batch ``x`` and its ``probs``, shape ``(n, classes)``) and return alerts."""
        ...


# --------------------------------------------------------------------------------------------- registry

MonitorFactory = Callable[[Mapping[str, Any], StoreLike, Inputs | None], Monitor]
MONITORS: dict[str, MonitorFactory] = {}
T = TypeVar("T")


def register_monitor(name: str) -> Callable[[T], T]:
    """Class decorator: make a monitor buildable by ``name`` through :func:`build_monitors`."""

    def wrap(cls: T) -> T:
        if name in MONITORS:
            raise ConfigError(f"monitor {name!r} is registered twice")
        MONITORS[name] = cls.from_config  # type: ignore[attr-defined]
        return cls

    return wrap


def build_monitors(config: list[dict[str, Any]], store: StoreLike, reference: Inputs | None) -> list[Monitor]:
    """Build the monitors a gateway's settings list, e.g. ``[{"name": "prada", "action": "block"}]``.

    Parameters
    ----------
    config
        One mapping per monitor: ``name`` (one of :data:`MONITORS`), optional ``action`` and the
        monitor's own settings; an unknown name or setting raises :class:`ConfigError` listing the
        allowed ones.
    store
        Where the monitors keep their per-key state (shared between replicas when it is Redis).
    reference
        A sample of in-distribution inputs (needed by ``drift``; ignored by the others).
    """
    from aisec.gateway import monitors as _pkg  # noqa: F401  (registers the built-in monitors)

    if not isinstance(config, list):
        raise ConfigError(f"monitors: expected a list of mappings, got {type(config).__name__}")
    built: list[Monitor] = []
    for i, entry in enumerate(config):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ConfigError(f"monitors[{i}]: expected a mapping with a 'name', got {entry!r}")
        name = entry["name"]
        if name not in MONITORS:
            raise ConfigError(f"monitors[{i}].name: unknown monitor {name!r}; allowed: {sorted(MONITORS)}")
        built.append(MONITORS[name]({k: v for k, v in entry.items() if k != "name"}, store, reference))
    return built


# --------------------------------------------------------------------------------------------- configs

C = TypeVar("C")


def make_config(cls: type[C], name: str, values: Mapping[str, Any]) -> C:
    """Build a monitor's frozen config from a mapping, naming any unknown setting."""
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"monitor {name!r}: unknown setting(s) {unknown}; allowed: {allowed}")
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - dataclass signature errors
        raise ConfigError(f"monitor {name!r}: {exc}") from exc


def check_fields(
    config: Any, name: str, *, positive: tuple[str, ...] = (), unit: tuple[str, ...] = (), integer: tuple[str, ...] = ()
) -> None:
    """``__post_init__`` checks shared by the monitor configs; raise :class:`ConfigError` naming the field."""
    action = getattr(config, "action", "log")
    if action not in ACTIONS:
        raise ConfigError(f"{name}.action: expected one of {list(ACTIONS)}, got {action!r}")
    for f in integer:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{name}.{f}: expected an integer, got {v!r}")
    for f in positive:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int | float) or not (v > 0 and math.isfinite(v)):
            raise ConfigError(f"{name}.{f}: expected a number > 0, got {v!r}")
    for f in unit:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v < 1.0:
            raise ConfigError(f"{name}.{f}: expected a number in (0, 1), got {v!r}")


# --------------------------------------------------------------------------------------------- inputs


def hash_text(texts: list[str], dim: int = TEXT_DIM) -> np.ndarray:
    """Hashed, L2-normalized bag of character 3-grams: a fixed-width vector per text (CRC32 buckets)."""
    out = np.zeros((len(texts), dim), dtype=np.float64)
    for i, t in enumerate(texts):
        s = f"  {t.lower()} "
        for j in range(len(s) - 2):
            out[i, zlib.crc32(s[j : j + 3].encode("utf-8")) % dim] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def as_features(x: Inputs) -> np.ndarray:
    """A batch as a float64 ``(n, d)`` matrix: arrays are flattened per row, texts hashed."""
    if isinstance(x, list):
        if not all(isinstance(t, str) for t in x):
            raise InputValidationError("x", "an array or a list of strings", "a list with non-strings")
        return hash_text(x)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise InputValidationError("x", "a batch (n, ...)", "a scalar")
    return arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)


def as_probs(probs: np.ndarray, n: int) -> np.ndarray:
    """Model outputs as ``(n, classes)``; a single row is accepted for a batch of one."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p.reshape(1, -1)
    if p.ndim != 2 or p.shape[0] != n:
        raise InputValidationError("probs", f"shape ({n}, classes)", tuple(p.shape))
    return p


# --------------------------------------------------------------------------------------------- state


def state_key(monitor: str, key_id: str, part: str) -> str:
    """The store key of one piece of a monitor's state for one API key."""
    return f"aisec:mon:{monitor}:{key_id}:{part}"


def push_rows(store: StoreLike, key: str, rows: np.ndarray, maxlen: int) -> None:
    """Append rows (float32 each) to a capped list in the store, in one atomic push."""
    store.push_many(key, [row.tobytes() for row in np.atleast_2d(np.asarray(rows, dtype=np.float32))], maxlen)


def read_rows(store: StoreLike, key: str, dim: int) -> np.ndarray:
    """Read a capped list back as a float64 ``(m, dim)`` matrix; rows of another width are skipped."""
    width = dim * 4
    items = [b for b in store.items(key) if len(b) == width]
    if not items:
        return np.zeros((0, dim), dtype=np.float64)
    return np.frombuffer(b"".join(items), dtype=np.float32).reshape(-1, dim).astype(np.float64)


def push_floats(store: StoreLike, key: str, values: np.ndarray | list[float], maxlen: int) -> None:
    """Append values (one float32 item each) to a capped list in the store, in one atomic push.

    Monitors keep their windows this way rather than read-modify-write of one blob: two requests of
    the same key answered at once (two gateway workers) then both land in the window, none is lost.
    """
    store.push_many(key, [v.tobytes() for v in np.asarray(values, dtype=np.float32).ravel()], maxlen)


def read_floats(store: StoreLike, key: str) -> np.ndarray:
    """A capped list of float32 items (see :func:`push_floats`), oldest first; empty when absent."""
    return read_rows(store, key, 1).ravel()
