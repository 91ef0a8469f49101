"""Recover which words a linear text filter uses, and their sign and rank, from queries alone."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import AisecError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

#: scikit-learn's default token pattern: what a text filter most likely splits on.
TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True, kw_only=True, slots=True)
class TextWordsConfig:
    """Parameters of :class:`TextWords`.

    Attributes
    ----------
    max_candidates:
        Candidate words to probe, the most frequent first (one query each, plus one for the empty text).
    top_k:
        How many of the most spam-indicative words the attacker reports (and the overlap is measured on).
    positive_class:
        Index of the class whose words are sought (1 = spam for the SMS filter).
    batch_size:
        Words per query batch.
    """

    max_candidates: int = 3000
    top_k: int = 50
    positive_class: int = 1
    batch_size: int = 512

    def __post_init__(self) -> None:
        ints = ("max_candidates", "top_k", "batch_size")
        check_config(
            self, "text-words", integer=(*ints, "positive_class"), positive=ints, non_negative=("positive_class",)
        )


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.double().clamp(1e-300, 1.0)
    return p.log() - (1.0 - p).clamp_min(1e-300).log()


def candidate_words(texts: list[str], limit: int) -> list[str]:
    """The attacker's vocabulary: tokens of public text, the most frequent first."""
    counts = Counter(tok for t in texts for tok in TOKEN.findall(t.lower()))
    return [w for w, _ in counts.most_common(limit)]


def true_weights(estimator: Any, positive_class: int) -> dict[str, float] | None:
    """Word -> weight of a scikit-learn text pipeline (vectorizer + linear model), for the assessor."""
    steps = [s for _, s in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    vec = next((s for s in steps if hasattr(s, "vocabulary_")), None)
    model = steps[-1]
    coef = getattr(model, "coef_", None)
    if vec is None or coef is None:
        return None
    coef = np.asarray(coef)
    row = coef[0] if coef.shape[0] == 1 else coef[positive_class] - coef[0]
    if coef.shape[0] == 1 and positive_class == 0:
        row = -row
    return {w: float(row[i]) for w, i in vec.vocabulary_.items()}


@register_attack
class TextWords(Attack):
    """Recovering a linear text filter's words from queries (Lowd and Meek 2005, Adversarial
    Learning, KDD; and the equation-solving view of Tramèr et al. 2016, arXiv:1609.02943).

    A linear filter over per-document normalized word features (TF-IDF or counts with L2
    normalization) scores a one-word message as ``w_word + b``: one query for the empty message
    gives ``b``, one query per candidate word gives its weight. The attacker ranks its candidate
    words (the tokens of public text it holds) by the recovered weight. The assessor compares the
    attacker's top-k spam words with the model's true top-k and its signs and ranks with the true
    weights: what the filter keeps secret, read off its API.
    """

    name = "text-words"
    goal = Goal.CONFIDENTIALITY
    needs = frozenset({Capability.PROBABILITIES})
    modalities = frozenset({Modality.TEXT})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0024.002"
    owasp = "ML05"
    paper = "Lowd and Meek 2005, Adversarial Learning, KDD; Tramèr et al. 2016, arXiv:1609.02943"
    headline = "top_k_overlap"
    worse_when = "higher"
    min_queries = 10
    Config = TextWordsConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: TextWordsConfig = self.config
        # public text the attacker holds: the held-out split (never the training data)
        public = list(data.x_test)
        remaining = view.budget.remaining
        limit = cfg.max_candidates if remaining is None else max(0, min(cfg.max_candidates, remaining - 1))
        words = candidate_words(public, limit)
        base = _logit(view.predict_proba([""])[:, cfg.positive_class].cpu())[0]
        scores = torch.empty(len(words), dtype=torch.float64)
        for start in range(0, len(words), cfg.batch_size):
            chunk = words[start : start + cfg.batch_size]
            p = view.predict_proba(chunk)[:, cfg.positive_class].cpu()
            scores[start : start + len(chunk)] = _logit(p) - base
            ctx.step(min(start + cfg.batch_size, len(words)), len(words))
        order = torch.argsort(scores, descending=True)
        recovered = [words[int(i)] for i in order[: cfg.top_k]]

        metrics: dict[str, Any] = {"candidates": len(words), "top_k": cfg.top_k, "recovered_top_words": recovered}
        flags: list[str] = []
        truth = None
        try:
            truth = true_weights(view.evaluation_view().parameters, cfg.positive_class)
        except AisecError:
            truth = None
        if truth is None:
            flags.append(
                "the true weights are not readable (not a scikit-learn linear text pipeline): overlap not measured"
            )
            metrics["top_k_overlap"] = None
        else:
            true_top = sorted(truth, key=truth.__getitem__, reverse=True)[: cfg.top_k]
            known = [i for i, w in enumerate(words) if w in truth]
            rec = scores[known].numpy()
            tru = np.array([truth[words[i]] for i in known])
            from scipy.stats import spearmanr

            metrics |= {
                "top_k_overlap": len(set(recovered) & set(true_top)) / cfg.top_k,
                "true_top_in_candidates": sum(w in set(words) for w in true_top) / cfg.top_k,
                "sign_agreement": float(np.mean(np.sign(rec) == np.sign(tru))) if len(known) else None,
                "rank_correlation": float(spearmanr(rec, tru).statistic) if len(known) > 2 else None,
                "max_weight_error": float(np.abs(rec - tru).max()) if len(known) else None,
            }
        overlap = metrics["top_k_overlap"]
        shown = "not measured" if overlap is None else f"{overlap:.0%} of the true top {cfg.top_k}"
        summary = (
            f"word recovery: {len(words) + 1} queries reveal the filter's top spam words ({shown}); "
            f"first: {', '.join(recovered[:8])}"
        )
        return AttackResult(metrics=metrics, summary=summary, flags=flags)
