"""Auditing differential privacy: an empirical lower bound on epsilon from a membership attack.

A mechanism that is (epsilon, delta)-DP bounds every membership test on one record: for any
threshold, ``TPR <= exp(epsilon) * FPR + delta`` and ``TNR <= exp(epsilon) * FNR + delta``
(Kairouz et al. 2015, arXiv:1311.0776). A measured (TPR, FPR) pair therefore proves
``epsilon >= log((TPR - delta) / FPR)``. Jagielski et al. 2020 (Auditing Differentially Private
Machine Learning, arXiv:2006.07709) and Nasr et al. 2021 (Adversary Instantiation, arXiv:2101.04535)
make this a statistical statement with Clopper-Pearson intervals: the lower end of TPR's interval
over the upper end of FPR's. :func:`epsilon_lower_bound` computes it for every threshold of an
attack's scores; :class:`DPAudit` runs LiRA (Carlini et al. 2022, arXiv:2112.03570) on the target
and reports the bound beside the accountant's epsilon, when the model carries one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.privacy.lira import LiRA, LiRAConfig
from aisec.attacks.privacy.metrics import clopper_pearson
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import AisecError, ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

#: Attribute a DP-trained ``nn.Module`` carries: ``{"epsilon", "delta", "accountant", ...}``.
DP_GUARANTEE_ATTR = "dp_guarantee"


@dataclass(frozen=True, slots=True)
class EpsilonBound:
    """The best operating point of :func:`epsilon_lower_bound`.

    ``epsilon`` is 0 when no threshold proves anything (the bound is never negative);
    ``direction`` is ``"tpr"`` for ``log((TPR_lo - delta) / FPR_hi)`` and ``"tnr"`` for the
    complementary test ``log((TNR_lo - delta) / FNR_hi)``.
    """

    epsilon: float
    threshold: float
    tpr: float
    fpr: float
    tpr_low: float
    fpr_high: float
    direction: Literal["tpr", "tnr"]
    n_members: int
    n_non_members: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "threshold": self.threshold,
            "tpr": self.tpr,
            "fpr": self.fpr,
            "tpr_low": self.tpr_low,
            "fpr_high": self.fpr_high,
            "direction": self.direction,
        }


def epsilon_lower_bound(
    scores_in: np.ndarray,
    scores_out: np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    thresholds: np.ndarray | None = None,
) -> EpsilonBound:
    """Empirical lower bound on epsilon from membership scores (a higher score means "member").

    For each threshold ``t`` the attack says "member" when ``score >= t``; with Clopper-Pearson
    intervals at ``confidence``, the bound at ``t`` is the larger of
    ``log((TPR_lo - delta) / FPR_hi)`` and ``log((TNR_lo - delta) / FNR_hi)`` (Jagielski et al.
    2020, arXiv:2006.07709), and the result is the maximum over ``thresholds`` (default: every
    distinct score), never below 0.

    The maximum over thresholds picked on the same scores is an optimistic estimate: each
    threshold's bound holds at ``confidence``, their maximum does not. For a bound that holds,
    choose the threshold on other data and pass it as ``thresholds``
    (:class:`DPAudit` reports both).
    """
    s_in = np.asarray(scores_in, dtype=float).ravel()
    s_out = np.asarray(scores_out, dtype=float).ravel()
    if len(s_in) == 0 or len(s_out) == 0:
        raise InputValidationError("scores", "at least one member and one non-member score", (len(s_in), len(s_out)))
    if not 0.0 <= delta < 1.0:
        raise InputValidationError("delta", "a number in [0, 1)", delta)
    if not 0.0 < confidence < 1.0:
        raise InputValidationError("confidence", "a number in (0, 1)", confidence)
    ts = np.unique(np.concatenate([s_in, s_out])) if thresholds is None else np.asarray(thresholds, dtype=float)
    n_in, n_out = len(s_in), len(s_out)
    tp = n_in - np.searchsorted(np.sort(s_in), ts, side="left")  # scores >= t
    fp = n_out - np.searchsorted(np.sort(s_out), ts, side="left")
    tpr_lo, _ = clopper_pearson(tp, n_in, confidence)
    _, fpr_hi = clopper_pearson(fp, n_out, confidence)
    tnr_lo, _ = clopper_pearson(n_out - fp, n_out, confidence)
    _, fnr_hi = clopper_pearson(n_in - tp, n_in, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_tpr = np.log(np.maximum(tpr_lo - delta, 0.0) / fpr_hi)
        e_tnr = np.log(np.maximum(tnr_lo - delta, 0.0) / fnr_hi)
    e_tpr = np.nan_to_num(e_tpr, nan=-np.inf)
    e_tnr = np.nan_to_num(e_tnr, nan=-np.inf)
    best = np.maximum(e_tpr, e_tnr)
    i = int(np.argmax(best))
    direction: Literal["tpr", "tnr"] = "tpr" if e_tpr[i] >= e_tnr[i] else "tnr"
    return EpsilonBound(
        epsilon=float(max(best[i], 0.0)),
        threshold=float(ts[i]),
        tpr=float(tp[i] / n_in),
        fpr=float(fp[i] / n_out),
        tpr_low=float(tpr_lo[i]),
        fpr_high=float(fpr_hi[i]),
        direction=direction,
        n_members=n_in,
        n_non_members=n_out,
    )


def holdout_lower_bound(
    scores_in: np.ndarray, scores_out: np.ndarray, *, delta: float, confidence: float = 0.95, seed: int = 0
) -> EpsilonBound:
    """A bound that holds at ``confidence``: the threshold is chosen on one random half of the
    scores and the Clopper-Pearson bound is computed on the other half."""
    rng = np.random.default_rng(seed)
    pin, pout = rng.permutation(len(scores_in)), rng.permutation(len(scores_out))
    hin, hout = len(pin) // 2, len(pout) // 2
    if min(hin, hout) < 1:
        raise InputValidationError("scores", "at least two member and two non-member scores", len(scores_in))
    s_in, s_out = np.asarray(scores_in, dtype=float), np.asarray(scores_out, dtype=float)
    pick = epsilon_lower_bound(s_in[pin[:hin]], s_out[pout[:hout]], delta=delta, confidence=confidence)
    return epsilon_lower_bound(
        s_in[pin[hin:]], s_out[pout[hout:]], delta=delta, confidence=confidence, thresholds=np.array([pick.threshold])
    )


def provable_ceiling(n_members: int, n_non_members: int, *, delta: float, confidence: float = 0.95) -> float:
    """The largest bound :func:`epsilon_lower_bound` can give on this many scores (a perfect attack)."""
    a = (1.0 - confidence) / 2.0
    return math.log((a ** (1.0 / n_members) - delta) / (1.0 - a ** (1.0 / n_non_members)))


def dp_guarantee(model: torch.nn.Module | None) -> Mapping[str, Any] | None:
    """The ``dp_guarantee`` a DP-trained module carries (see :mod:`aisec.defenses.training.dp`), else ``None``."""
    seen = 0
    while model is not None and seen < 8:
        found = getattr(model, DP_GUARANTEE_ATTR, None)
        if isinstance(found, Mapping):
            return found
        model = getattr(model, "inner", None)  # wrappers such as the view's forward counter
        seen += 1
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class DPAuditConfig:
    """Parameters of :class:`DPAudit`.

    Attributes
    ----------
    delta:
        The delta of the bound; ``None`` takes the model's accountant delta, else 1e-5.
    accountant_epsilon:
        The epsilon the model was trained to; ``None`` reads it from the model when it was trained
        by :class:`~aisec.defenses.training.dp.DPSGD`.
    confidence:
        Level of the Clopper-Pearson intervals.
    shadows, n_samples:
        LiRA's shadow models and members (and as many non-members) to score; more samples allow
        larger bounds (:func:`provable_ceiling`).
    lira:
        Further LiRA parameters (:class:`~aisec.attacks.privacy.lira.LiRAConfig`), e.g. the
        target's recipe ``hidden``, ``epochs``, ``lr``.
    """

    delta: float | None = None
    accountant_epsilon: float | None = None
    confidence: float = 0.95
    shadows: int = 8
    n_samples: int | None = 500
    lira: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.delta is not None and not (isinstance(self.delta, int | float) and 0.0 <= self.delta < 1.0):
            raise ConfigError(f"dp-audit.delta: expected a number in [0, 1), got {self.delta!r}")
        if self.accountant_epsilon is not None:
            check_config(self, "dp-audit", positive=("accountant_epsilon",))
        if not (isinstance(self.confidence, float) and 0.0 < self.confidence < 1.0):
            raise ConfigError(f"dp-audit.confidence: expected a number in (0, 1), got {self.confidence!r}")
        if self.lira is not None and not isinstance(self.lira, Mapping):
            raise ConfigError(f"dp-audit.lira: expected a mapping of LiRA parameters, got {self.lira!r}")
        self.lira_config()  # checks the LiRA parameters now

    def lira_config(self) -> LiRAConfig:
        extra = dict(self.lira or {})
        for own in ("shadows", "n_samples"):
            if own in extra:
                raise ConfigError(f"dp-audit.lira.{own}: set dp-audit.{own} instead")
        return LiRA.config_from(extra | {"shadows": self.shadows, "n_samples": self.n_samples})


@register_attack
class DPAudit(Attack):
    """Empirical lower bound on the target's epsilon from LiRA (Jagielski et al. 2020, arXiv:2006.07709;
    Nasr et al. 2021, arXiv:2101.04535; LiRA: Carlini et al. 2022, arXiv:2112.03570).

    Runs LiRA through the view (grey-box: the shadows use LiRA's MLP recipe, not the target's
    DP-SGD, so against a DP model the attack, and with it the bound, is on the weak side) and turns
    its operating points into ``epsilon_lower_bound`` = max over thresholds of
    ``log((TPR_lo - delta) / FPR_hi)`` with Clopper-Pearson 95% bounds, and into
    ``epsilon_lower_bound_holdout``, whose threshold is picked on a disjoint half (a bound that
    holds at 95%). The accountant's epsilon (the upper bound) is reported beside it when known;
    a lower bound above it is flagged (a broken guarantee or a broken accountant).
    """

    name = "dp-audit"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.PROBABILITIES, Capability.DATA_SAMPLE})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0024.000"
    owasp = "ML04"
    paper = "Jagielski et al. 2020, Auditing Differentially Private Machine Learning, arXiv:2006.07709"
    headline = "epsilon_lower_bound"
    worse_when = "higher"
    min_queries = LiRA.min_queries
    Config = DPAuditConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: DPAuditConfig = self.config
        known = self._guarantee(view)
        acc_eps = cfg.accountant_epsilon if cfg.accountant_epsilon is not None else _num(known, "epsilon")
        delta = cfg.delta if cfg.delta is not None else (_num(known, "delta") or 1e-5)
        lira = LiRA(cfg.lira_config())._run(view, data, ctx)  # same view, data and seed: one attacker
        s_in, s_out = lira.arrays["scores_members"], lira.arrays["scores_non_members"]
        best = epsilon_lower_bound(s_in, s_out, delta=delta, confidence=cfg.confidence)
        held = holdout_lower_bound(s_in, s_out, delta=delta, confidence=cfg.confidence, seed=ctx.seed)
        # LiRA's membership figures with their intervals and sample sizes: the scorecard judges them as in lira's finding
        keep = [k for k in lira.metrics if k.startswith(("auc", "tpr_at_", "n_", "min_resolvable", "roc_", "shadow_"))]
        metrics: dict[str, Any] = {k: lira.metrics[k] for k in keep if k in lira.metrics}
        metrics |= {
            "epsilon_lower_bound": best.epsilon,
            "epsilon_lower_bound_holdout": held.epsilon,
            "accountant_epsilon": acc_eps,
            "delta": delta,
            "confidence": cfg.confidence,
            "best_operating_point": best.as_dict(),
            "n_members": best.n_members,
            "n_non_members": best.n_non_members,
        }
        if known:
            metrics["accountant"] = str(known.get("accountant", ""))
        flags = list(lira.flags)  # what LiRA's finding would say: the sample's resolution, the shadows' recipe
        if acc_eps is not None and best.epsilon > acc_eps:
            flags.append(
                f"the empirical lower bound {best.epsilon:.2f} exceeds the accountant's epsilon {acc_eps:.2f}: "
                "the DP guarantee does not hold as stated (or the threshold search was lucky; see the holdout bound)"
            )
        ceiling = provable_ceiling(len(s_in), len(s_out), delta=delta, confidence=cfg.confidence)
        metrics["epsilon_provable_max"] = ceiling
        shown = f"{acc_eps:.2f}" if acc_eps is not None else "unknown (not a model trained by aisec's dp-sgd)"
        point = (
            f"best point TPR {best.tpr:.1%} at FPR {best.fpr:.2%}"
            if best.epsilon > 0
            else "no threshold proves epsilon > 0"
        )
        summary = (
            f"DP audit: empirical epsilon >= {best.epsilon:.2f} (holdout {held.epsilon:.2f}; "
            f"{cfg.confidence:.0%} Clopper-Pearson, delta {delta:g}) vs accountant epsilon {shown}; "
            f"LiRA AUC {metrics.get('auc', float('nan')):.3f}, {point} "
            f"({best.n_members} members, {best.n_non_members} non-members: no bound above {ceiling:.2f} is provable)"
        )
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=lira.arrays)

    @staticmethod
    def _guarantee(view: TargetView) -> Mapping[str, Any] | None:
        try:  # the assessor reads the claim off the model; the attack never steers by it
            return dp_guarantee(view.evaluation_view().model)
        except AisecError:
            return None


def _num(d: Mapping[str, Any] | None, key: str) -> float | None:
    v = None if d is None else d.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
