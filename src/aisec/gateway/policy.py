"""Output hardening: how much of the model's answer leaves the gateway.

Full probabilities (optionally rounded, optionally with label-preserving noise), the top-k
classes and scores, or the label only. Rounding and top-k follow the countermeasures discussed by
Tramèr et al. (2016, arXiv:1609.02943); label-preserving noise on the scores is in the spirit of
MemGuard (Jia et al., 2019, arXiv:1909.10594): the predicted class never changes, the scores an
attacker learns from do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aisec.gateway.settings import OutputPolicy


def _noisy(probs: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    labels = probs.argmax(axis=1)
    out = np.clip(probs + rng.normal(0.0, std, size=probs.shape), 1e-6, None)
    out /= out.sum(axis=1, keepdims=True)
    rows = np.arange(len(out))
    moved = out.argmax(axis=1)
    # Keep the label: swap the scores of the new argmax and the true label where they differ.
    hi, lo = out[rows, moved].copy(), out[rows, labels].copy()
    out[rows, labels], out[rows, moved] = hi, lo
    return out


def harden(probs: np.ndarray, policy: OutputPolicy, rng: np.random.Generator) -> dict[str, Any]:
    """The answer a caller under ``policy`` gets for probabilities of shape ``(n, classes)``.

    Always ``labels``; plus ``probabilities`` (mode probabilities) or ``top_k`` (mode top-k).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    answer: dict[str, Any] = {"labels": [int(v) for v in labels]}
    if policy.mode == "label":
        return answer
    shown = _noisy(probs, policy.noise_std, rng) if policy.noise_std > 0 and len(probs) else probs
    if policy.decimals is not None:
        shown = np.round(shown, policy.decimals)
    if policy.mode == "top-k":
        k = min(policy.top_k, probs.shape[1])
        # The label stays first even when rounding ties it with another class.
        ranked = np.argsort(-shown, axis=1, kind="stable")
        rest = [[int(c) for c in row if c != lab][: k - 1] for row, lab in zip(ranked, labels, strict=True)]
        classes = [[int(lab), *r] for lab, r in zip(labels, rest, strict=True)]
        scores = [[float(shown[i, c]) for c in row] for i, row in enumerate(classes)]
        answer["top_k"] = {"classes": classes, "scores": scores}
        return answer
    answer["probabilities"] = [[float(v) for v in row] for row in shown]
    return answer


__all__ = ["harden"]
