"""RONI, Reject On Negative Impact: drop training points whose addition makes a small model worse.

Nelson et al. 2008 ("Exploiting Machine Learning to Subvert Your Spam Filter", LEET 2008) and
Barreno et al. 2010 ("The security of machine learning", Machine Learning 81) defend a spam
filter against dictionary attacks this way: for each candidate training message, train on a small
trusted base set with and without it, measure accuracy on a calibration set, repeat over a few
random resamples, and reject the message when its mean impact is clearly negative.

The candidates are scored all at once with a multinomial naive Bayes model on word counts, whose
fit is a sum of counts: adding one message changes only its class's counts, so the effect of each
candidate on every calibration message is one sparse product (exact, no refit). Any other
scikit-learn learner can be given instead (``learner=``); it is refit per candidate and resample,
which is correct but orders of magnitude slower. The rejection threshold is calibrated on
reference points of the trusted set itself: a ``reject_quantile`` of their own impacts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from scipy import sparse

from aisec.attacks.poisoning.common import PoisonedSet
from aisec.core.configurable import check_choice
from aisec.errors import ConfigError, InputValidationError

log = logging.getLogger(__name__)

Score = Literal["accuracy", "log-likelihood"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RoniConfig:
    """Parameters of :func:`roni`.

    Attributes
    ----------
    base_size:
        Trusted messages in each resample's base training set (Nelson et al. used 20).
    calib_size:
        Trusted messages in each resample's calibration set (Nelson et al.: 50).
    resamples:
        Random (base, calibration) pairs a candidate's impact is averaged over (Nelson et al.: 5).
    n_reference:
        Trusted messages kept out of every resample, whose impacts calibrate the threshold.
    reject_quantile:
        A candidate is rejected when its impact is below this quantile of the reference impacts
        (and below zero): about this share of clean points is rejected.
    score:
        ``"accuracy"`` (Nelson's measure: change in calibration accuracy) or ``"log-likelihood"``
        (mean change in the log-probability of the true labels: continuous, fewer ties).
    model:
        The fast surrogate: ``"presence"`` (naive Bayes on which words a message holds, scored on
        its present words only, like SpamBayes: one vote per message, so a long dictionary message
        weighs no more than a short one) or ``"multinomial"`` (word counts).
    alpha:
        Additive smoothing of the naive Bayes model.
    seed:
        Seeds the resamples.
    """

    base_size: int = 100
    calib_size: int = 200
    resamples: int = 5
    n_reference: int = 200
    reject_quantile: float = 0.05
    score: Score = "log-likelihood"
    model: Literal["presence", "multinomial"] = "presence"
    alpha: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for f in ("base_size", "calib_size", "resamples", "n_reference", "seed"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if f == "seed" else 1):
                raise ConfigError(f"roni.{f}: expected an integer >= {0 if f == 'seed' else 1}, got {v!r}")
        if not 0.0 <= self.reject_quantile <= 1.0:
            raise ConfigError(f"roni.reject_quantile: expected a number in [0, 1], got {self.reject_quantile!r}")
        check_choice("roni.score", self.score, ("accuracy", "log-likelihood"))
        check_choice("roni.model", self.model, ("presence", "multinomial"))
        if not self.alpha > 0:
            raise ConfigError(f"roni.alpha: expected a number > 0, got {self.alpha!r}")


@dataclass(frozen=True, slots=True)
class RoniResult:
    """What :func:`roni` decided.

    Attributes
    ----------
    impact:
        Mean impact of each candidate on the calibration score (negative: it makes the model worse).
    rejected:
        ``True`` for candidates to drop.
    threshold:
        The impact below which a candidate is rejected.
    reference_impact:
        Impacts of the trusted reference points the threshold was calibrated on.
    seconds:
        Wall time of the scoring.
    """

    impact: np.ndarray
    rejected: np.ndarray
    threshold: float
    reference_impact: np.ndarray
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def _labels(y: torch.Tensor | Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(y.cpu().numpy() if isinstance(y, torch.Tensor) else y, dtype=np.int64)


def _nb_impacts(
    xb: sparse.csr_matrix, yb: np.ndarray, xv: sparse.csr_matrix, yv: np.ndarray, xc: sparse.csr_matrix,
    yc: np.ndarray, n_classes: int, alpha: float, score: Score, presence: bool = True,
) -> np.ndarray:  # fmt: skip
    """Change of the calibration score when each candidate alone is added to the base set (exact).

    ``presence``: a word's class probability is the share of the class's messages holding it and a
    message scores by the words it holds (SpamBayes-like, one vote per message); otherwise the
    multinomial model on counts, where long messages weigh more.
    """
    if presence:
        xb, xv, xc = (m.copy() for m in (xb, xv, xc))
        for m in (xb, xv, xc):
            m.data[:] = 1.0
    counts = np.stack([np.asarray(xb[yb == c].sum(0)).ravel() for c in range(n_classes)]) + alpha  # (C, V)
    docs = np.bincount(yb, minlength=n_classes).astype(np.float64) + 1.0  # Laplace-smoothed prior counts
    totals = docs - 1.0 + 2.0 * alpha if presence else counts.sum(1)  # (C,)
    log_theta = np.log(counts) - np.log(totals)[:, None]
    joint = xv @ log_theta.T + np.log(docs / docs.sum())  # (n_v, C)
    base = _score(joint, yv, score)
    # adding candidate q (class c) changes class c's counts on q's words and its total, and the prior
    xc = xc.tocsr()
    rows = np.repeat(np.arange(xc.shape[0]), np.diff(xc.indptr))
    cls = yc[rows]
    old = counts[cls, xc.indices]
    delta = sparse.csr_matrix((np.log(old + xc.data) - np.log(old), xc.indices, xc.indptr), shape=xc.shape)
    word_gain = np.asarray((xv @ delta.T).todense())  # (n_v, m): change of sum_j x_vj log count_cj
    lengths = np.asarray(xv.sum(1)).ravel()[:, None]  # (n_v, 1)
    q_len = np.ones(xc.shape[0]) if presence else np.asarray(xc.sum(1)).ravel()
    out = np.empty(xc.shape[0])
    for c in range(n_classes):
        sel = np.flatnonzero(yc == c)
        if not len(sel):
            continue
        new_docs = docs.copy()
        new_docs[c] += 1.0
        prior = np.log(new_docs / new_docs.sum())  # (C,)
        j = np.repeat((xv @ log_theta.T)[:, :, None], len(sel), axis=2)  # (n_v, C, m_c)
        j[:, c, :] += word_gain[:, sel] - lengths * (np.log(totals[c] + q_len[sel]) - np.log(totals[c]))[None, :]
        j += prior[None, :, None]
        out[sel] = _score(j, yv, score) - base
    return out


def _score(joint: np.ndarray, yv: np.ndarray, score: Score) -> np.ndarray | float:
    """Calibration score per candidate: ``joint`` is (n_v, C) or (n_v, C, m)."""
    if score == "accuracy":
        return (joint.argmax(1) == (yv if joint.ndim == 2 else yv[:, None])).mean(0)
    logz = np.logaddexp.reduce(joint, axis=1)
    true = np.take_along_axis(joint, yv.reshape(-1, 1, *([1] * (joint.ndim - 2))), axis=1)[:, 0]
    return (true - logz).mean(0)


def _refit_impacts(
    learner: Any, xb: list[str], yb: np.ndarray, xv: list[str], yv: np.ndarray, xc: list[str], yc: np.ndarray,
    score: Score,
) -> np.ndarray:  # fmt: skip
    """The same impacts with any scikit-learn learner, refit once per candidate (slow)."""
    from sklearn.base import clone

    def quality(x: list[str], y: np.ndarray) -> float:
        model = clone(learner).fit(x, y)
        if score == "accuracy":
            return float((model.predict(xv) == yv).mean())
        proba = np.clip(model.predict_proba(xv), 1e-12, 1.0)
        col = np.searchsorted(model.classes_, yv)
        return float(np.log(proba[np.arange(len(yv)), col]).mean())

    base = quality(xb, yb)
    return np.asarray([quality([*xb, t], np.append(yb, c)) - base for t, c in zip(xc, yc, strict=True)])


def roni(
    trusted_x: Sequence[str],
    trusted_y: torch.Tensor | Sequence[int] | np.ndarray,
    candidates_x: Sequence[str],
    candidates_y: torch.Tensor | Sequence[int] | np.ndarray,
    config: RoniConfig | None = None,
    *,
    learner: Any = None,
) -> RoniResult:
    """Score and reject candidate training messages by their impact on a calibration set.

    Parameters
    ----------
    trusted_x, trusted_y:
        The defender's vetted messages: base and calibration sets are drawn from them, and
        ``config.n_reference`` of them calibrate the threshold.
    candidates_x, candidates_y:
        Incoming training messages with the labels they would be trained with.
    config:
        :class:`RoniConfig`; the defaults score thousands of SMS in about a second.
    learner:
        ``None``: the exact incremental multinomial naive Bayes on word counts. An unfitted
        scikit-learn text pipeline: refit per candidate and resample (slow, for comparison).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    cfg = config or RoniConfig()
    ty, cy = _labels(trusted_y), _labels(candidates_y)
    if len(trusted_x) != len(ty) or len(candidates_x) != len(cy):
        raise InputValidationError("labels", "one label per message", (len(ty), len(cy)))
    need = cfg.n_reference + cfg.base_size + cfg.calib_size
    if len(ty) < need:
        raise InputValidationError(
            "trusted_x", f"at least n_reference + base_size + calib_size = {need} messages", len(ty)
        )
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(ty))
    ref, pool = order[: cfg.n_reference], order[cfg.n_reference :]
    tx, cx = list(trusted_x), list(candidates_x)
    n_classes = int(max(ty.max(initial=0), cy.max(initial=0))) + 1
    if learner is None:
        vec = CountVectorizer().fit([*tx, *cx])
        tmat, cmat = vec.transform(tx).tocsr(), vec.transform(cx).tocsr()
    impacts = np.zeros(len(cy))
    ref_impacts = np.zeros(len(ref))
    for _ in range(cfg.resamples):
        pick = rng.permutation(pool)
        b, v = pick[: cfg.base_size], pick[cfg.base_size : cfg.base_size + cfg.calib_size]
        if learner is None:
            args = (tmat[b], ty[b], tmat[v], ty[v])
            pres = cfg.model == "presence"
            impacts += _nb_impacts(*args, cmat, cy, n_classes, cfg.alpha, cfg.score, pres)
            ref_impacts += _nb_impacts(*args, tmat[ref], ty[ref], n_classes, cfg.alpha, cfg.score, pres)
        else:
            args2 = (learner, [tx[i] for i in b], ty[b], [tx[i] for i in v], ty[v])
            impacts += _refit_impacts(*args2, cx, cy, cfg.score)
            ref_impacts += _refit_impacts(*args2, [tx[i] for i in ref], ty[ref], cfg.score)
    impacts /= cfg.resamples
    ref_impacts /= cfg.resamples
    threshold = min(float(np.quantile(ref_impacts, cfg.reject_quantile)), 0.0)
    rejected = impacts < threshold
    seconds = time.perf_counter() - start
    log.info("RONI rejected %d of %d candidates in %.2f s", int(rejected.sum()), len(cy), seconds)
    return RoniResult(
        impacts, rejected, threshold, ref_impacts, seconds, {"learner": "nb" if learner is None else "refit"}
    )


def detection_scores(rejected: np.ndarray, poisoned: np.ndarray) -> dict[str, float | int]:
    """Precision and recall of the rejected points against the true poison mask."""
    rejected, poisoned = np.asarray(rejected, bool), np.asarray(poisoned, bool)
    tp = int((rejected & poisoned).sum())
    return {
        "precision": tp / int(rejected.sum()) if rejected.any() else 0.0,
        "recall": tp / int(poisoned.sum()) if poisoned.any() else 0.0,
        "n_rejected": int(rejected.sum()),
        "n_poison": int(poisoned.sum()),
        "true_positives": tp,
    }


def roni_filter(
    poisoned: PoisonedSet, trusted: np.ndarray, config: RoniConfig | None = None, *, learner: Any = None
) -> tuple[RoniResult, dict[str, float | int]]:
    """RONI on a poisoned training set: ``trusted`` (a mask) marks the points the defender vetted.

    Every point that is not trusted is a candidate. Returns the result (``rejected`` over the whole
    set; trusted points are never rejected) and precision/recall against ``poisoned.poisoned``.
    """
    trusted = np.asarray(trusted, bool)
    if trusted.shape != poisoned.poisoned.shape:
        raise InputValidationError("trusted", f"a mask of {len(trusted)} rows", trusted.shape)
    if not isinstance(poisoned.x, list | tuple):
        raise InputValidationError("poisoned.x", "a list of texts", type(poisoned.x).__name__)
    t_idx, c_idx = np.flatnonzero(trusted), np.flatnonzero(~trusted)
    y = _labels(poisoned.y)
    res = roni(
        [poisoned.x[i] for i in t_idx], y[t_idx], [poisoned.x[i] for i in c_idx], y[c_idx], config, learner=learner
    )
    full = np.zeros(len(y), bool)
    full[c_idx] = res.rejected
    impact = np.zeros(len(y))
    impact[c_idx] = res.impact
    result = RoniResult(impact, full, res.threshold, res.reference_impact, res.seconds, res.info)
    return result, detection_scores(full[c_idx], poisoned.poisoned[c_idx])


__all__ = ["RoniConfig", "RoniResult", "detection_scores", "roni", "roni_filter"]
