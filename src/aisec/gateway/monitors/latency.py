"""Latency outliers: requests whose model latency sits far above the recent median.

A sudden slow answer can mean a resource-exhaustion ("sponge") input (Shumailov et al.,
"Sponge Examples: Energy-Latency Attacks on Neural Networks", EuroS&P 2021, arXiv:2006.03463)
or an overloaded replica. The monitor keeps the newest ``window`` latencies (of the whole service
by default, or of each key) and flags a request slower than ``median + k * 1.4826 * MAD`` and at
least ``min_excess_s`` above the median, once ``min_samples`` latencies are in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from aisec.errors import ConfigError
from aisec.gateway.monitors.base import (
    Action,
    Alert,
    Inputs,
    StoreLike,
    check_fields,
    make_config,
    register_monitor,
    state_key,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LatencyConfig:
    """Settings of :class:`LatencyMonitor`; ``scope`` is ``service`` (one history) or ``key``."""

    k: float = 6.0
    min_excess_s: float = 0.005
    window: int = 200
    min_samples: int = 30
    scope: Literal["service", "key"] = "service"
    action: Action = "log"

    def __post_init__(self) -> None:
        check_fields(
            self, "latency", positive=("k", "window", "min_samples", "min_excess_s"), integer=("window", "min_samples")
        )
        if self.scope not in ("service", "key"):
            raise ConfigError(f"latency.scope: expected 'service' or 'key', got {self.scope!r}")


@register_monitor("latency")
class LatencyMonitor:
    """Flags requests whose latency is a robust outlier against the recent history."""

    name = "latency"

    def __init__(self, config: LatencyConfig, store: StoreLike) -> None:
        self.config = config
        self.store = store

    @classmethod
    def from_config(
        cls, values: Mapping[str, Any], store: StoreLike, reference: Inputs | None = None
    ) -> LatencyMonitor:
        return cls(make_config(LatencyConfig, "latency", values), store)

    def observe(self, key_id: str, x: Inputs, probs: np.ndarray, latency_s: float) -> list[Alert]:
        cfg = self.config
        key = state_key(self.name, key_id if cfg.scope == "key" else "*", "lat")
        raw = self.store.items(key)
        self.store.push(key, np.float32(latency_s).tobytes(), cfg.window)
        if len(raw) < cfg.min_samples:
            return []
        hist = np.frombuffer(b"".join(r for r in raw if len(r) == 4), dtype=np.float32).astype(np.float64)
        med = float(np.median(hist))
        mad = 1.4826 * float(np.median(np.abs(hist - med)))
        limit = max(med + cfg.k * mad, med + cfg.min_excess_s)
        if latency_s <= limit:
            return []
        return [
            Alert(
                monitor=self.name,
                key_id=key_id,
                score=(latency_s - med) / max(mad, 1e-9),
                message=(
                    f"latency {latency_s * 1e3:.1f} ms exceeds the recent median {med * 1e3:.1f} ms "
                    f"(limit {limit * 1e3:.1f} ms over {hist.size} requests)"
                ),
                action=cfg.action,
            )
        ]
