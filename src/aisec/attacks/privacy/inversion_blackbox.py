"""Black-box MI-Face: model inversion with zeroth-order gradient estimates, within the query budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.privacy.inversion import inversion_metrics
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class MIFaceBlackBoxConfig:
    """Parameters of :class:`MIFaceBlackBox`.

    Attributes
    ----------
    steps:
        Descent steps; each costs ``2 * directions`` queries per class.
    directions:
        Random directions of each gradient estimate (antithetic pairs).
    delta:
        Finite-difference step, as a fraction of the input range.
    lr:
        Step size of the sign of the estimated gradient, as a fraction of the input range.
    init:
        Starting value of every input, as a fraction of the range.
    """

    steps: int = 40
    directions: int = 10
    delta: float = 0.05
    lr: float = 0.05
    init: float = 0.0

    def __post_init__(self) -> None:
        ints = ("steps", "directions")
        check_config(self, "mi-face-blackbox", integer=ints, positive=(*ints, "delta", "lr"), unit=("init",))


@register_attack
class MIFaceBlackBox(Attack):
    """Black-box MI-Face: model inversion from probabilities alone (Fredrikson et al. 2015, CCS).

    The cost ``1 - p_c(x)`` of MI-Face is minimised for all classes at once with gradients
    estimated from queries: antithetic Gaussian directions and central differences (the
    zeroth-order estimate of ZOO, Chen et al. 2017, arXiv:1708.03999), and signed steps clipped
    to the input range. Every query is charged; the attack stops before the budget runs out.
    Scored like ``mi-face``: a class is recovered when its reconstruction correlates most with
    its own class's training mean.
    """

    name = "mi-face-blackbox"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.PROBABILITIES})
    modalities = frozenset({Modality.IMAGE})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0024.001"
    owasp = "ML03"
    paper = "Fredrikson, Jha & Ristenpart 2015, CCS; Chen et al. 2017 (ZOO), arXiv:1708.03999"
    headline = "share_recovered"
    worse_when = "higher"
    min_queries = 100
    Config = MIFaceBlackBoxConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: MIFaceBlackBoxConfig = self.config
        if not isinstance(data.x_train, torch.Tensor):
            raise InputValidationError("data", "numeric inputs (tensors)", "text")
        n_classes = view.n_classes
        shape = view.input_shape or tuple(data.x_train.shape[1:])
        lo, hi = view.clip or (float(data.x_train.min()), float(data.x_train.max()))
        width = hi - lo
        gen = torch.Generator().manual_seed(ctx.seed)
        target = torch.arange(n_classes).view(-1, 1)
        x = torch.full((n_classes, *shape), lo + cfg.init * width)
        q = cfg.directions
        per_step = 2 * q * n_classes
        budget_left = math.inf if view.budget.limit is None else view.budget.limit - view.budget.used
        steps = int(min(cfg.steps, budget_left // per_step))
        for i in range(steps):
            u = torch.randn((n_classes, q, *shape), generator=gen)
            pts = torch.cat([x.unsqueeze(1) + cfg.delta * width * u, x.unsqueeze(1) - cfg.delta * width * u], dim=1)
            probs = view.predict_proba(pts.clamp(lo, hi).reshape(-1, *shape)).cpu().double()
            p = probs.view(n_classes, 2 * q, -1).gather(2, target.view(-1, 1, 1).expand(-1, 2 * q, 1)).squeeze(2)
            diff = (p[:, q:] - p[:, :q]) / (2 * cfg.delta * width)  # d(1 - p)/du, antithetic central difference
            grad = (diff.view(n_classes, q, *([1] * len(shape))).float() * u).mean(1)
            x = (x - cfg.lr * width * grad.sign()).clamp(lo, hi)
            ctx.step(i + 1, max(steps, 1))
        ctx.step(max(steps, 1), max(steps, 1))
        final = view.evaluation_view().predict_proba(x).cpu().gather(1, target).squeeze(1)  # the assessor's check
        xs, ys = data.x_train.float(), data.y_train
        means = torch.stack([xs[ys == c].mean(0) if (ys == c).any() else torch.zeros(shape) for c in range(n_classes)])
        metrics: dict = inversion_metrics(x, means)
        metrics |= {"steps": steps, "mean_target_confidence": float(final.mean()), "queries_per_step": per_step}
        flags = [] if steps == cfg.steps else [f"the query budget allowed {steps} of {cfg.steps} steps"]
        summary = (
            f"black-box MI-Face recovered {metrics['classes_recovered']}/{n_classes} classes in {steps} steps "
            f"(correlation own {metrics['mean_own_correlation']:.2f} vs best other "
            f"{metrics['mean_best_other_correlation']:.2f})"
        )
        arrays = {"reconstructions": x.numpy(), "class_means": means.numpy().astype(np.float32)}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
