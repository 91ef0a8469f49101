"""DeepFool: the minimal perturbation to the nearest decision boundary, by iterated linearisation, L2 and L-inf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.integrity.common import WhiteBoxEvasion, correct_batches, evasion_inputs
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

#: Added to each step's distance so that a step lands just past the linearised boundary, not on it.
_PUSH = 1e-4


@dataclass(frozen=True, kw_only=True, slots=True)
class DeepFoolConfig:
    """Parameters of :class:`DeepFool`.

    Attributes
    ----------
    norm:
        ``"l2"`` (the paper's attack) or ``"linf"`` (its L-p variant for p = inf).
    steps:
        Most linearisation steps per input; the search stops for an input once it is misclassified.
    overshoot:
        The total perturbation is scaled by ``1 + overshoot`` to cross the boundary (the paper's 0.02).
    candidates:
        Classes considered per input: the ``candidates`` highest-scored at the clean input (the
        paper's shortcut for many classes); ``None`` considers every class.
    eps:
        Radius in ``norm`` within which an adversarial counts: ``robust_accuracy`` is the share of
        inputs still classified right after DeepFool's perturbation is projected onto the eps-ball.
        ``None`` counts every adversarial, however far (an unbounded attack).
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    batch_size:
        Inputs per batch.
    """

    norm: Literal["l2", "linf"] = "l2"
    steps: int = 50
    overshoot: float = 0.02
    candidates: int | None = 10
    eps: float | None = None
    n_samples: int | None = 500
    batch_size: int = 256

    def __post_init__(self) -> None:
        ints = ("steps", "batch_size")
        check_config(self, "deepfool", integer=ints, positive=ints, non_negative=("overshoot",))
        check_choice("deepfool.norm", self.norm, ("l2", "linf"))
        if self.candidates is not None:
            check_config(self, "deepfool", integer=("candidates",))
            if self.candidates < 2:
                raise ConfigError(f"deepfool.candidates: expected an integer >= 2, got {self.candidates!r}")
        if self.eps is not None:
            check_config(self, "deepfool", non_negative=("eps",))
        check_config(self, "deepfool", counts=("n_samples",))


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.ndim - 1)))


def _size(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(1)


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """``delta`` moved onto the eps-ball of ``norm`` (unchanged when already inside)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * _bc((eps / _size(delta, "l2").clamp_min(1e-12)).clamp(max=1.0), delta)


def deepfool(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "l2",
    steps: int = 50,
    overshoot: float = 0.02,
    candidates: int | None = 10,
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched DeepFool on inputs the model classifies as ``y``; returns ``(x_adv, fooled)``.

    Each step linearises the model at the current point: for every candidate class k, the
    boundary with the true class is ``f_k - f_y = 0`` with normal ``w_k = grad f_k - grad f_y``.
    The nearest such hyperplane (distance ``|f_k - f_y| / ||w_k||_q``, q the dual norm) gives the
    step; steps accumulate in ``r`` and the point is ``x + (1 + overshoot) r``, clipped to the
    input range. An input leaves the batch as soon as it is misclassified.
    """
    r = torch.zeros_like(x)
    x_adv = x.clone()
    fooled = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    if len(y) == 0:
        return x_adv, fooled
    with torch.no_grad():
        logits0 = model(x)
    n_cls = logits0.shape[1]
    k = n_cls if candidates is None else min(candidates, n_cls)
    # the true class first, then the others by their clean score
    others = logits0.scatter(1, y[:, None], float("-inf")).topk(k - 1, dim=1).indices
    classes = torch.cat([y[:, None], others], dim=1)
    active = torch.arange(len(y), device=x.device)
    for _ in range(steps):
        xa = x_adv[active].requires_grad_(True)
        with torch.enable_grad():
            logits = model(xa)
            cls = classes[active]
            picked = logits.gather(1, cls)
            grads = [
                torch.autograd.grad(picked[:, j].sum(), xa, retain_graph=j < k - 1)[0] for j in range(k)
            ]  # one backward pass per candidate class, each for the whole batch
        with torch.no_grad():
            hit = logits.argmax(1) != cls[:, 0]
            fooled[active[hit]] = True
            keep = ~hit
            if not keep.any():
                break
            active, picked = active[keep], picked[keep]
            g = torch.stack(grads, 1)[keep]  # (n, k, ...)
            w = (g[:, 1:] - g[:, :1]).flatten(2)  # boundary normals, (n, k-1, d)
            f = (picked[:, 1:] - picked[:, :1]).abs()  # distances in logit units, (n, k-1)
            dual = w.norm(dim=2) if norm == "l2" else w.abs().sum(2)
            dist = (f + _PUSH) / dual.clamp_min(1e-12)
            best = dist.argmin(1)
            w_l = w[torch.arange(len(active), device=x.device), best]
            d_l = dist.gather(1, best[:, None])
            dual_l = dual.gather(1, best[:, None]).clamp_min(1e-12)
            step = d_l * (w_l / dual_l if norm == "l2" else w_l.sign())
            r[active] += step.view(-1, *x.shape[1:])
            new = x[active] + (1 + overshoot) * r[active]
            x_adv[active] = new.clamp(*clip) if clip is not None else new
    else:
        if len(active):
            with torch.no_grad():
                fooled[active] = model(x_adv[active]).argmax(1) != y[active]
    return x_adv.detach(), fooled


@register_attack
class DeepFool(WhiteBoxEvasion):
    """DeepFool (Moosavi-Dezfooli, Fawzi and Frossard 2016, arXiv:1511.04599).

    A white-box attack that looks for the *smallest* perturbation changing the label: it
    linearises the classifier around the current point, steps onto the nearest linearised decision
    boundary (L2, or L-inf with the dual L1 norm), and repeats until the label flips, then
    overshoots by 2%. It gives a per-input robustness estimate (the perturbation size needed),
    used as a fast lower bound on the distance to the boundary and as a cheap member of a
    robust-eval suite; the whole batch advances together, one forward and one backward pass per
    candidate class per step.
    """

    name = "deepfool"
    paper = (
        "Moosavi-Dezfooli, Fawzi and Frossard 2016, DeepFool: a simple and accurate method to fool deep "
        "neural networks, arXiv:1511.04599"
    )
    Config = DeepFoolConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: DeepFoolConfig = self.config
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        model = view.model
        n = len(y_all)
        clean_ok = torch.zeros(n, dtype=torch.bool, device=view.device)
        fooled = torch.zeros_like(clean_ok)
        broken = torch.zeros_like(clean_ok)
        size = torch.full((n,), float("inf"), device=view.device)
        l2 = torch.full((n,), float("inf"), device=view.device)
        x_out = x_all.clone()
        for start, x, y, idx in correct_batches(model, x_all, y_all, cfg.batch_size, clean_ok, ctx):
            x_adv, hit = deepfool(
                model, x[idx], y[idx], norm=cfg.norm, steps=cfg.steps, overshoot=cfg.overshoot,
                candidates=cfg.candidates, clip=view.clip,
            )  # fmt: skip
            rows = idx + start
            delta = x_adv - x[idx]
            fooled[rows] = hit
            size[rows] = torch.where(hit, _size(delta, cfg.norm), size[rows])
            l2[rows] = torch.where(hit, _size(delta, "l2"), l2[rows])
            x_out[rows] = x_adv
            if cfg.eps is None:
                broken[rows] = hit
            elif len(idx):  # the perturbation projected onto the eps-ball must still fool the model
                x_eps = x[idx] + project(delta, cfg.eps, cfg.norm)
                x_eps = x_eps.clamp(*view.clip) if view.clip is not None else x_eps
                with torch.no_grad():
                    broken[rows] = hit & (model(x_eps).argmax(1) != y[idx])
        n_ok = max(int(clean_ok.sum().item()), 1)
        found = size[fooled]
        clean_acc = clean_ok.float().mean().item() if n else 0.0
        robust_acc = (clean_ok & ~broken).float().mean().item() if n else 0.0
        unit = "L2" if cfg.norm == "l2" else "L-inf"
        metrics = {
            "norm": cfg.norm,
            "eps": cfg.eps,
            "steps": cfg.steps,
            "overshoot": cfg.overshoot,
            "n": n,
            "clean_accuracy": clean_acc,
            "robust_accuracy": robust_acc,
            "attack_success_rate": broken.sum().item() / n_ok,
            "unbounded_success_rate": fooled.sum().item() / n_ok,
            "median_perturbation": found.median().item() if len(found) else 0.0,
            "mean_perturbation": found.mean().item() if len(found) else 0.0,
            "median_l2": l2[fooled].median().item() if len(found) else 0.0,
        }
        at = f"eps={cfg.eps:g}" if cfg.eps is not None else "any distance"
        summary = (
            f"DeepFool-{cfg.norm}: an adversarial for {metrics['unbounded_success_rate']:.1%} of correctly "
            f"classified inputs, median {unit} {metrics['median_perturbation']:.3g}; accuracy {clean_acc:.1%} -> "
            f"{robust_acc:.1%} at {at} (n={n})"
        )
        keep = fooled.nonzero().squeeze(1)[:64]
        arrays = {
            "x_adv": x_out[keep].detach().cpu().numpy(),
            "index": keep.cpu().numpy(),
            "broken": broken.cpu().numpy(),
            "perturbation": size.cpu().numpy(),
        }
        return AttackResult(metrics=metrics, summary=summary, arrays=arrays)
