"""MI-Face model inversion, white-box, batched over all classes (Fredrikson et al. 2015)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class MIFaceConfig:
    """Parameters of :class:`MIFace`.

    Attributes
    ----------
    steps:
        Gradient-descent steps on the inversion cost ``1 - p_c(x)``.
    lr:
        Step size, as a fraction of the width of the input range.
    threshold:
        A class's reconstruction stops once its cost falls below this.
    init:
        Starting value of every pixel / feature, as a fraction of the input range (0 is the
        lower bound, as in Fredrikson et al.'s all-blank start).
    """

    steps: int = 200
    lr: float = 0.1
    threshold: float = 0.01
    init: float = 0.0

    def __post_init__(self) -> None:
        check_config(self, "mi-face", integer=("steps",), positive=("steps", "lr"), unit=("threshold", "init"))


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every row of ``a`` with every row of ``b``: (len(a), len(b))."""
    a = a.reshape(len(a), -1).double()
    b = b.reshape(len(b), -1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def inversion_metrics(recon: torch.Tensor, class_means: torch.Tensor) -> dict[str, float | int | list[float]]:
    """Per class: correlation with its own training mean vs the best other class; recovered when own is highest."""
    c = _corr(recon, class_means)
    n = len(c)
    own = c.diagonal()
    other = c.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf")).max(1).values
    recovered = own > other
    return {
        "classes_recovered": int(recovered.sum()),
        "n_classes": n,
        "share_recovered": float(recovered.double().mean()),
        "mean_own_correlation": float(own.mean()),
        "mean_best_other_correlation": float(other.mean()),
        "own_correlation": own.round(decimals=4).tolist(),
        "best_other_correlation": other.round(decimals=4).tolist(),
    }


@register_attack
class MIFace(Attack):
    """MI-Face model inversion (Fredrikson, Jha & Ristenpart 2015, CCS, "Model Inversion Attacks
    that Exploit Confidence Information and Basic Countermeasures").

    White-box: for every class ``c`` at once, gradient descent on the input to minimise
    ``1 - p_c(x)`` from a blank start, clipped to the input range; a class stops when its cost is
    below ``threshold``. The reconstruction of a class is the input the model finds most
    typical of it. The assessor scores it against the class means of the training data: a class
    is recovered when its reconstruction correlates more with its own mean than with any other.
    """

    name = "mi-face"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.GRADIENTS})
    # a reconstruction compared with class means is an image; for tabular data see attribute-inference
    modalities = frozenset({Modality.IMAGE})
    knowledge = Knowledge.WHITE_BOX
    atlas = "AML.T0024.001"
    owasp = "ML03"
    paper = "Fredrikson, Jha & Ristenpart 2015, Model Inversion Attacks that Exploit Confidence Information, CCS"
    headline = "share_recovered"
    worse_when = "higher"
    Config = MIFaceConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: MIFaceConfig = self.config
        if not isinstance(data.x_train, torch.Tensor):
            raise InputValidationError("data", "numeric inputs (tensors)", "text")
        model = view.model
        n_classes = view.n_classes
        shape = view.input_shape or tuple(data.x_train.shape[1:])
        lo, hi = view.clip or (float(data.x_train.min()), float(data.x_train.max()))
        target = torch.arange(n_classes, device=view.device)
        x = torch.full((n_classes, *shape), lo + cfg.init * (hi - lo), device=view.device)
        active = torch.ones(n_classes, dtype=torch.bool, device=view.device)
        step = cfg.lr * (hi - lo)
        steps_done = 0
        for i in range(cfg.steps):
            x.requires_grad_(True)
            p = torch.softmax(model(x), dim=1).gather(1, target.view(-1, 1)).squeeze(1)
            cost = 1.0 - p
            (grad,) = torch.autograd.grad(cost.sum(), x)
            with torch.no_grad():
                active &= cost.detach() >= cfg.threshold
                if not active.any():
                    break
                mask = active.view(-1, *([1] * len(shape))).to(x.dtype)
                x = (x - step * grad * mask).clamp(lo, hi).detach()
            steps_done = i + 1
            ctx.step(i + 1, cfg.steps)
        x = x.detach()
        with torch.no_grad():
            final = torch.softmax(model(x), dim=1).gather(1, target.view(-1, 1)).squeeze(1)
        ctx.step(cfg.steps, cfg.steps)
        # the assessor's measurement: class means of the training data (members)
        xs, ys = data.x_train.to(view.device).float(), data.y_train.to(view.device)
        means = torch.stack([xs[ys == c].mean(0) if (ys == c).any() else torch.zeros(shape) for c in range(n_classes)])
        metrics: dict = inversion_metrics(x, means)
        metrics |= {"steps": steps_done, "mean_target_confidence": float(final.mean())}
        summary = (
            f"MI-Face recovered {metrics['classes_recovered']}/{n_classes} classes "
            f"(correlation with own class mean {metrics['mean_own_correlation']:.2f} vs best other "
            f"{metrics['mean_best_other_correlation']:.2f})"
        )
        arrays = {"reconstructions": x.cpu().numpy(), "class_means": means.cpu().numpy().astype(np.float32)}
        return AttackResult(metrics=metrics, summary=summary, arrays=arrays)
