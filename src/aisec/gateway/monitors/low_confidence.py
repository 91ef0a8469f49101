"""Spikes of low-confidence outputs: a key whose answers suddenly sit near the decision boundary.

Queries near the boundary are what evasion attacks craft and what extraction attacks seek
(e.g. Tramèr et al., "Stealing Machine Learning Models via Prediction APIs", USENIX Security 2016,
arXiv:1609.02943), and a burst of them can also mean the inputs drifted. The monitor keeps the
top-class probability of the key's newest ``window`` answers and flags the key when more than
``max_fraction`` of them fall below ``threshold`` (once ``min_queries`` answers are in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aisec.gateway.monitors.base import (
    Action,
    Alert,
    Inputs,
    StoreLike,
    as_probs,
    check_fields,
    make_config,
    push_floats,
    read_floats,
    register_monitor,
    state_key,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LowConfidenceConfig:
    """Settings of :class:`LowConfidenceMonitor`."""

    threshold: float = 0.6
    max_fraction: float = 0.3
    window: int = 100
    min_queries: int = 30
    action: Action = "log"

    def __post_init__(self) -> None:
        check_fields(
            self,
            "low-confidence",
            unit=("threshold", "max_fraction"),
            positive=("window", "min_queries"),
            integer=("window", "min_queries"),
        )


@register_monitor("low-confidence")
class LowConfidenceMonitor:
    """Flags a key when too many of its recent answers have a low top-class probability."""

    name = "low-confidence"

    def __init__(self, config: LowConfidenceConfig, store: StoreLike) -> None:
        self.config = config
        self.store = store

    @classmethod
    def from_config(
        cls, values: Mapping[str, Any], store: StoreLike, reference: Inputs | None = None
    ) -> LowConfidenceMonitor:
        return cls(make_config(LowConfidenceConfig, "low-confidence", values), store)

    def observe(self, key_id: str, x: Inputs, probs: np.ndarray, latency_s: float) -> list[Alert]:
        cfg = self.config
        top = as_probs(probs, len(x)).max(axis=1)
        key = state_key(self.name, key_id, "confs")
        push_floats(self.store, key, top, cfg.window)
        conf = read_floats(self.store, key)
        if conf.size < cfg.min_queries:
            return []
        frac = float((conf < cfg.threshold).mean())
        if frac <= cfg.max_fraction:
            return []
        return [
            Alert(
                monitor=self.name,
                key_id=key_id,
                score=frac,
                message=(
                    f"{frac:.0%} of the key's last {conf.size} answers have confidence < {cfg.threshold} "
                    f"(allowed {cfg.max_fraction:.0%})"
                ),
                action=cfg.action,
            )
        ]
