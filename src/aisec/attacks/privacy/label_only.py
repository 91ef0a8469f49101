"""Label-only membership inference by robustness to noise (Choquette-Choo et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.privacy.metrics import bootstrap_intervals, membership_metrics, resolution_flags
from aisec.attacks.privacy.sample import affordable_split
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelOnlyConfig:
    """Parameters of :class:`LabelOnly`.

    Attributes
    ----------
    n_samples:
        Members and as many non-members to evaluate on; ``None`` uses all the split allows.
    n_noise:
        Noisy copies queried per candidate.
    sigma:
        Standard deviation of the Gaussian noise, as a fraction of the input range (or in raw
        units for inputs without a declared range). 0.3 was the best of 0.1-0.5 on an
        overfit digits MLP.
    calibration_fpr:
        The threshold is set at this false-positive rate on population data (known non-members).
    n_population:
        Population points used for the calibration.
    n_bootstrap:
        Bootstrap resamples for the 95% intervals.
    batch_size:
        Inputs per query.
    """

    n_samples: int | None = 200
    n_noise: int = 16
    sigma: float = 0.3
    calibration_fpr: float = 0.05
    n_population: int = 200
    n_bootstrap: int = 200
    batch_size: int = 1024

    def __post_init__(self) -> None:
        ints = ("n_noise", "n_population", "n_bootstrap", "batch_size")
        check_config(self, "label-only", integer=ints, positive=(*ints, "sigma"), unit=("calibration_fpr",))
        check_config(self, "label-only", counts=("n_samples",))


def _calibrate(pop: np.ndarray, fpr: float) -> float:
    """Lowest score ``t`` with at most ``fpr`` of the population at or above it (scores are discrete)."""
    ok = [float(v) for v in np.unique(pop) if (pop >= v).mean() <= fpr]
    return min(ok) if ok else float("inf")


@register_attack
class LabelOnly(Attack):
    """Label-only membership inference (Choquette-Choo et al. 2021, arXiv:2007.14321).

    A model is more robust around its training points: the attacker queries the *label* of each
    candidate and of ``n_noise`` copies with Gaussian noise, and scores the candidate by how many
    of them keep the true label (the clean label counts double, to break ties). It needs labels
    only, so it works against APIs that hide confidences. The threshold is calibrated on
    population data known not to be members; AUC and TPR at low FPR need no threshold.
    """

    name = "label-only"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.LABELS})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0024.000"
    owasp = "ML04"
    paper = "Choquette-Choo et al. 2021, Label-Only Membership Inference Attacks, arXiv:2007.14321"
    headline = "auc"
    worse_when = "higher"
    min_queries = 100
    Config = LabelOnlyConfig

    def _scores(self, view: TargetView, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> np.ndarray:
        cfg: LabelOnlyConfig = self.config
        lo, hi = view.clip if view.clip is not None else (None, None)
        scale = cfg.sigma * ((hi - lo) if lo is not None and hi is not None else 1.0)
        reps = cfg.n_noise + 1
        per = max(1, cfg.batch_size // reps)
        out = []
        for s in range(0, len(y), per):
            xb, yb = x[s : s + per].float(), y[s : s + per]
            noise = torch.randn((len(yb), cfg.n_noise, *xb.shape[1:]), generator=gen) * scale
            noisy = xb.unsqueeze(1) + noise
            if lo is not None:
                noisy = noisy.clamp(lo, hi)
            batch = torch.cat([xb, noisy.reshape(-1, *xb.shape[1:])])
            labels = view.predict(batch).cpu()
            clean = (labels[: len(yb)] == yb).double()
            kept = (labels[len(yb) :].view(len(yb), cfg.n_noise) == yb.view(-1, 1)).double().sum(1)
            out.append((2 * clean + kept).numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: LabelOnlyConfig = self.config
        if not isinstance(data.x_train, torch.Tensor):
            raise InputValidationError("data", "numeric inputs (tensors)", "text")
        per = cfg.n_noise + 1  # the point itself and its noisy copies
        split, shrunk = affordable_split(
            view,
            data,
            cfg.n_samples,
            ctx.seed,
            attack=self.name,
            per_point=per,
            population=cfg.n_population,
        )
        (x_in, y_in), (x_out, y_out), (x_pop, y_pop) = split.members, split.non_members, split.population
        x_in, x_out, x_pop = cast(torch.Tensor, x_in), cast(torch.Tensor, x_out), cast(torch.Tensor, x_pop)
        x_pop, y_pop = x_pop[: cfg.n_population], y_pop[: cfg.n_population]
        gen = torch.Generator().manual_seed(ctx.seed)
        pop = self._scores(view, x_pop, y_pop, gen)
        ctx.step(1, 3)
        s_in = self._scores(view, x_in, y_in, gen)
        ctx.step(2, 3)
        s_out = self._scores(view, x_out, y_out, gen)
        ctx.step(3, 3)
        metrics = membership_metrics(s_in, s_out) | bootstrap_intervals(
            s_in, s_out, n_boot=cfg.n_bootstrap, seed=ctx.seed
        )
        threshold = _calibrate(pop, cfg.calibration_fpr)
        tpr = float((s_in >= threshold).mean()) if len(s_in) else 0.0
        fpr = float((s_out >= threshold).mean()) if len(s_out) else 0.0
        metrics |= {
            "threshold": threshold,
            "calibrated_tpr": tpr,
            "calibrated_fpr": fpr,
            "balanced_accuracy": 0.5 * (tpr + 1.0 - fpr),
            "mean_score_members": float(s_in.mean()) if len(s_in) else 0.0,
            "mean_score_non_members": float(s_out.mean()) if len(s_out) else 0.0,
            "queries_per_candidate": cfg.n_noise + 1,
        }
        flags = resolution_flags(metrics) + shrunk
        summary = (
            f"label-only ({cfg.n_noise} noisy queries per point, sigma {cfg.sigma}): AUC {metrics['auc']:.3f}, "
            f"TPR {metrics['tpr_at_1pct_fpr']:.1%} at 1% FPR, balanced accuracy {metrics['balanced_accuracy']:.1%}"
        )
        arrays = {"scores_members": s_in, "scores_non_members": s_out, "scores_population": pop}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
