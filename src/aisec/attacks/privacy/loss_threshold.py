"""Loss-threshold membership inference, calibrated on population data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.privacy.metrics import bootstrap_intervals, membership_metrics, resolution_flags
from aisec.attacks.privacy.sample import affordable_split
from aisec.core.goals import Capability, Goal, Knowledge
from aisec.data.dataset import Dataset, Features
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class LossThresholdConfig:
    """Parameters of :class:`LossThreshold`.

    Attributes
    ----------
    n_samples:
        Members and as many non-members to evaluate on (at most half the test split);
        ``None`` uses all that the split allows.
    calibration_fpr:
        The attacker sets its threshold at this quantile of the population's losses, so it expects
        this false-positive rate; the balanced accuracy is measured at that threshold.
    n_bootstrap:
        Bootstrap resamples for the 95% intervals of AUC and TPR at 1% / 0.1% FPR (the scorecard judges on them).
    batch_size:
        Inputs per query.
    """

    n_samples: int | None = 1000
    calibration_fpr: float = 0.05
    n_bootstrap: int = 200
    batch_size: int = 512

    def __post_init__(self) -> None:
        ints = ("n_bootstrap", "batch_size")
        check_config(self, "loss-threshold", unit=("calibration_fpr",), positive=ints, integer=ints)
        check_config(self, "loss-threshold", counts=("n_samples",))


def _losses(view: TargetView, x: Features, y: torch.Tensor, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(y), batch_size):
        p = view.predict_proba(x[start : start + batch_size]).double().cpu()
        py = p.gather(1, y[start : start + batch_size].view(-1, 1).cpu()).squeeze(1)
        out.append((-py.clamp_min(1e-12).log()).numpy())
    return np.concatenate(out) if out else np.zeros(0)


@register_attack
class LossThreshold(Attack):
    """Loss-threshold membership inference (Yeom et al. 2018, arXiv:1709.01604).

    A model's loss on its training points is lower than on unseen points. The attacker queries
    the probability of each candidate's true label and calls it a member when the loss is below a
    threshold set on *population* data that it knows was not trained on (Ye et al. 2022,
    arXiv:2111.09679, attack P). Metrics follow Carlini et al. 2022 (arXiv:2112.03570): AUC and
    the true-positive rate at 1% and 0.1% false-positive rate, with bootstrap 95% intervals.
    """

    name = "loss-threshold"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.PROBABILITIES})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0024.000"
    owasp = "ML04"
    paper = "Yeom et al. 2018, Privacy Risk in Machine Learning, arXiv:1709.01604"
    headline = "auc"
    worse_when = "higher"
    min_queries = 100
    Config = LossThresholdConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: LossThresholdConfig = self.config
        split, shrunk = affordable_split(view, data, cfg.n_samples, ctx.seed, attack=self.name, population=None)
        (x_in, y_in), (x_out, y_out), (x_pop, y_pop) = split.members, split.non_members, split.population
        total = len(y_in) + len(y_out) + len(y_pop)
        pop = _losses(view, x_pop, y_pop, cfg.batch_size)
        ctx.step(len(y_pop), total)
        loss_in = _losses(view, x_in, y_in, cfg.batch_size)
        ctx.step(len(y_pop) + len(y_in), total)
        loss_out = _losses(view, x_out, y_out, cfg.batch_size)
        ctx.step(total, total)
        metrics = membership_metrics(-loss_in, -loss_out)
        metrics |= bootstrap_intervals(-loss_in, -loss_out, n_boot=cfg.n_bootstrap, seed=ctx.seed)
        threshold = float(np.quantile(pop, cfg.calibration_fpr)) if len(pop) else 0.0
        tpr = float((loss_in <= threshold).mean()) if len(loss_in) else 0.0
        fpr = float((loss_out <= threshold).mean()) if len(loss_out) else 0.0
        metrics |= {
            "threshold": threshold,
            "calibrated_tpr": tpr,
            "calibrated_fpr": fpr,
            "balanced_accuracy": 0.5 * (tpr + 1.0 - fpr),
            "mean_loss_members": float(loss_in.mean()) if len(loss_in) else 0.0,
            "mean_loss_non_members": float(loss_out.mean()) if len(loss_out) else 0.0,
        }
        flags = resolution_flags(metrics) + shrunk
        summary = (
            f"loss threshold: AUC {metrics['auc']:.3f}, TPR {metrics['tpr_at_1pct_fpr']:.1%} at 1% FPR, "
            f"balanced accuracy {metrics['balanced_accuracy']:.1%} ({len(y_in)} members, {len(y_out)} non-members)"
        )
        arrays = {
            "loss_members": loss_in,
            "loss_non_members": loss_out,
            "loss_population": pop,
            **{f"idx_{k}": v for k, v in split.indices.items()},
        }
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
