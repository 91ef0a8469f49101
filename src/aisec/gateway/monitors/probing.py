"""Adversarial-probing detection: many near-duplicate queries around one input.

Decision-based evasion attacks (boundary attack, Brendel et al. 2018, arXiv:1712.04248;
HopSkipJump, Chen et al. 2020, arXiv:1904.02144) walk along the decision boundary near one input
with thousands of queries that differ by tiny perturbations; a stateful detector that remembers
a client's recent queries sees them as a dense cluster (Chen, Carlini and Wagner, "Stateful
Detection of Black-Box Adversarial Attacks", 2019, arXiv:1907.05587). This monitor keeps the
key's newest ``window`` queries and flags a query with at least ``min_neighbors`` of them within
``radius`` (root-mean-square difference per feature; for text, ``text_radius``: the L2 distance
between unit-length hashed character 3-gram vectors, 0 for equal texts and about 1.4 for unrelated ones).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aisec.errors import ConfigError
from aisec.gateway.monitors.base import (
    Action,
    Alert,
    Inputs,
    StoreLike,
    as_features,
    check_fields,
    make_config,
    push_rows,
    read_rows,
    register_monitor,
    state_key,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProbingConfig:
    """Settings of :class:`ProbingMonitor`."""

    radius: float = 0.05
    text_radius: float = 0.6
    min_neighbors: int = 20
    window: int = 100
    action: Action = "log"

    def __post_init__(self) -> None:
        check_fields(
            self,
            "probing",
            positive=("radius", "text_radius", "min_neighbors", "window"),
            integer=("min_neighbors", "window"),
        )
        if self.min_neighbors > self.window:
            raise ConfigError(f"probing.min_neighbors: must be <= window ({self.window}), got {self.min_neighbors}")


@register_monitor("probing")
class ProbingMonitor:
    """Flags a key that sends many near-duplicates of one input (stateful probing detection)."""

    name = "probing"

    def __init__(self, config: ProbingConfig, store: StoreLike) -> None:
        self.config = config
        self.store = store

    @classmethod
    def from_config(
        cls, values: Mapping[str, Any], store: StoreLike, reference: Inputs | None = None
    ) -> ProbingMonitor:
        return cls(make_config(ProbingConfig, "probing", values), store)

    def observe(self, key_id: str, x: Inputs, probs: np.ndarray, latency_s: float) -> list[Alert]:
        cfg = self.config
        feats = as_features(x)
        text = isinstance(x, list)
        scale, radius = (1.0, cfg.text_radius) if text else (math.sqrt(feats.shape[1]), cfg.radius)
        key = state_key(self.name, key_id, "q")
        recent = read_rows(self.store, key, feats.shape[1])
        worst = 0
        for row in feats:
            if recent.shape[0]:
                dist = np.sqrt(((recent - row) ** 2).sum(axis=1)) / scale
                worst = max(worst, int((dist <= radius).sum()))
            recent = np.vstack([recent, row])[-cfg.window :]
        push_rows(self.store, key, feats[-cfg.window :], cfg.window)
        if worst < cfg.min_neighbors:
            return []
        return [
            Alert(
                monitor=self.name,
                key_id=key_id,
                score=worst / cfg.window,
                message=(
                    f"{worst} of the key's last {cfg.window} queries lie within {radius} of one query: "
                    "boundary probing suspected"
                ),
                action=cfg.action,
            )
        ]
