"""PRADA: model-extraction detection from the distribution of distances between a key's queries.

Juuti, Szyller, Marchal and Asokan, "PRADA: Protecting against DNN Model Stealing Attacks",
EuroS&P 2019, arXiv:1805.02628. Benign clients query natural samples whose distances to their
nearest earlier query (of the same predicted class) are close to normally distributed; the
synthetic queries of an extraction attack (Jacobian-based augmentation, perturbations of a few
seeds) produce a few large and many small, near-identical distances. Each new query's minimum
L2 distance to the key's "growing set" of its predicted class is recorded; once enough distances
are in, a Shapiro-Wilk test of normality runs and the key is flagged when ``W < delta``.

State per key, in the store: the growing set per class (capped at ``max_set`` rows), the
threshold per class, the accepted distances per class and the window of distances (capped at
``window``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from aisec.errors import ConfigError
from aisec.gateway.monitors.base import (
    Action,
    Alert,
    Inputs,
    StoreLike,
    as_features,
    as_probs,
    check_fields,
    make_config,
    push_floats,
    push_rows,
    read_floats,
    read_rows,
    register_monitor,
    state_key,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class PradaConfig:
    """Settings of :class:`PradaMonitor`.

    ``delta`` is the Shapiro-Wilk W below which a key is flagged; ``min_queries`` distances are
    needed before the first test; the test uses the newest ``window`` distances.
    """

    delta: float = 0.9
    min_queries: int = 50
    window: int = 300
    max_set: int = 200
    action: Action = "log"

    def __post_init__(self) -> None:
        check_fields(
            self,
            "prada",
            unit=("delta",),
            positive=("min_queries", "window", "max_set"),
            integer=("min_queries", "window", "max_set"),
        )
        if self.min_queries < 3 or self.window < self.min_queries:
            raise ConfigError(f"prada: need 3 <= min_queries <= window, got {self.min_queries}, {self.window}")


@register_monitor("prada")
class PradaMonitor:
    """Flags a key whose query distances stop looking normal (PRADA, Juuti et al. 2019, arXiv:1805.02628)."""

    name = "prada"

    def __init__(self, config: PradaConfig, store: StoreLike) -> None:
        self.config = config
        self.store = store

    @classmethod
    def from_config(cls, values: Mapping[str, Any], store: StoreLike, reference: Inputs | None = None) -> PradaMonitor:
        return cls(make_config(PradaConfig, "prada", values), store)

    def _k(self, key_id: str, part: str) -> str:
        return state_key(self.name, key_id, part)

    def statistic(self, key_id: str) -> float | None:
        """The Shapiro-Wilk W of the key's current window of distances (``None`` before ``min_queries``)."""
        d = read_floats(self.store, self._k(key_id, "dist"))
        return _shapiro(d) if d.size >= self.config.min_queries else None

    def observe(self, key_id: str, x: Inputs, probs: np.ndarray, latency_s: float) -> list[Alert]:
        cfg = self.config
        feats = as_features(x)
        classes = as_probs(probs, feats.shape[0]).argmax(axis=1)
        dim = feats.shape[1]
        new_d: list[float] = []
        for c in np.unique(classes):
            rows = feats[classes == c]
            g_key = self._k(key_id, f"g{c}")
            grown = read_rows(self.store, g_key, dim)
            accepted = read_floats(self.store, self._k(key_id, f"acc{c}"))
            tau = float(max(accepted.mean() - accepted.std(), 0.0)) if accepted.size else 0.0
            added: list[np.ndarray] = []
            added_d: list[float] = []
            for row in rows:
                if grown.shape[0] == 0:
                    grown = row[None, :]
                    added.append(row)
                    continue
                d = float(np.sqrt(((grown - row) ** 2).sum(axis=1).min()))
                new_d.append(d)
                if d > tau:
                    grown = np.vstack([grown, row])[-cfg.max_set :]
                    added.append(row)
                    added_d.append(d)
                    accepted = np.append(accepted, d)[-cfg.max_set :]
                    tau = float(max(accepted.mean() - accepted.std(), 0.0))
            # appends, not rewrites: a concurrent request of the same key adds its rows too
            if added:
                push_rows(self.store, g_key, np.stack(added), cfg.max_set)
            if added_d:
                push_floats(self.store, self._k(key_id, f"acc{c}"), added_d, cfg.max_set)
        if not new_d:
            return []
        push_floats(self.store, self._k(key_id, "dist"), new_d, cfg.window)
        distances = read_floats(self.store, self._k(key_id, "dist"))
        if distances.size < cfg.min_queries:
            return []
        w = _shapiro(distances)
        if w >= cfg.delta:
            return []
        return [
            Alert(
                monitor=self.name,
                key_id=key_id,
                score=1.0 - w,
                message=(
                    f"query distances are not normal (Shapiro-Wilk W={w:.3f} < {cfg.delta} over "
                    f"{distances.size} queries): model extraction suspected"
                ),
                action=cfg.action,
            )
        ]


def _shapiro(d: np.ndarray) -> float:
    if np.ptp(d) <= 1e-12:  # all equal: as far from a normal sample as it gets
        return 0.0
    return float(stats.shapiro(d).statistic)


def calibrate_delta(
    streams: Iterable[np.ndarray], predict: Callable[[np.ndarray], np.ndarray], *, margin: float = 0.03,
    **settings: Any,
) -> float:  # fmt: skip
    """A ``delta`` for a deployment: the lowest W that benign client streams reach, minus ``margin``.

    PRADA's threshold depends on the data: 0.9 suits 8x8 digits, but standardized tabular rows
    with heavy-tailed features give benign W around 0.7. Replay a few benign clients (e.g. samples
    of held-out data), one query per request, through a throw-away monitor with ``settings``.
    """
    lowest = 1.0
    for i, stream in enumerate(streams):
        mon = PradaMonitor(PradaConfig(**{**settings, "delta": 1e-6}), _Scratch())
        for q in np.asarray(stream):
            mon.observe(f"c{i}", q[None], predict(q[None]), 0.0)
            w = mon.statistic(f"c{i}")
            if w is not None:
                lowest = min(lowest, w)
    delta = lowest - margin
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"prada: calibration gave delta={delta:.3f}; give longer benign streams or a smaller margin")
    return delta


class _Scratch:
    """A minimal in-process store for calibration runs."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.lists: dict[str, list[bytes]] = {}

    def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        v = int(self.values.get(key, b"0")) + amount
        self.values[key] = str(v).encode()
        return v

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self.values[key] = value

    def push(self, key: str, value: bytes, maxlen: int) -> None:
        self.push_many(key, [value], maxlen)

    def push_many(self, key: str, values: list[bytes], maxlen: int) -> None:
        self.lists[key] = [*self.lists.get(key, []), *values][-maxlen:]

    def items(self, key: str) -> list[bytes]:
        return list(self.lists.get(key, []))
