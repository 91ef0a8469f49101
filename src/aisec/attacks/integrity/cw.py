"""Carlini & Wagner's L2 attack: tanh change of variables, Adam, batched binary search on c."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.integrity.common import WhiteBoxEvasion, correct_batches, evasion_inputs
from aisec.data.dataset import Dataset
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class CWConfig:
    """Parameters of :class:`CarliniWagnerL2`.

    Attributes
    ----------
    steps:
        Adam steps per value of c.
    binary_steps:
        Values of c tried per input (binary search; c grows tenfold until the attack succeeds).
    initial_c:
        First weight of the misclassification term.
    lr:
        Adam learning rate in tanh space.
    confidence:
        Margin kappa by which the wrong class must win.
    targeted:
        Push towards a random other class instead of away from the true one.
    abort_early:
        Stop a value of c when the loss stops falling.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    batch_size:
        Inputs per batch.
    """

    steps: int = 100
    binary_steps: int = 9
    initial_c: float = 1.0
    lr: float = 0.05
    confidence: float = 0.0
    targeted: bool = False
    abort_early: bool = True
    n_samples: int | None = 100
    batch_size: int = 256

    def __post_init__(self) -> None:
        ints = ("steps", "binary_steps", "batch_size")
        check_config(self, "cw", integer=ints, positive=(*ints, "initial_c", "lr"), non_negative=("confidence",))
        check_config(self, "cw", counts=("n_samples",))


def _margin(logits: torch.Tensor, label: torch.Tensor, targeted: bool) -> torch.Tensor:
    """How far the attack is from its goal: > 0 until the wrong (or target) class wins."""
    z_l = logits.gather(1, label[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(label, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - z_l if targeted else z_l - other


def cw_l2(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 100,
    binary_steps: int = 9,
    initial_c: float = 1.0,
    lr: float = 0.05,
    confidence: float = 0.0,
    target: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
    abort_early: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The C&W L2 attack on a batch; returns ``(x_adv, success)``.

    Minimizes ``||x' - x||_2^2 + c * max(margin(x'), -confidence)`` with Adam over ``w``, where
    ``x' = lo + (hi - lo) (tanh(w) + 1) / 2`` keeps ``x'`` in the clip box (without a clip range the
    perturbation itself is optimized). Each input has its own c, searched in parallel: tenfold up
    until the attack succeeds, then bisected. ``x_adv`` is the smallest successful point found (the
    input itself where none was found).
    """
    targeted = target is not None
    label = target if targeted else y
    n = len(y)
    if clip is not None:
        lo, hi = clip
        w0 = torch.atanh(((x - lo) / (hi - lo) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))

        def to_x(w: torch.Tensor) -> torch.Tensor:
            return lo + (hi - lo) * (torch.tanh(w) + 1) / 2
    else:
        w0 = x.clone()

        def to_x(w: torch.Tensor) -> torch.Tensor:
            return w

    c = torch.full((n,), float(initial_c), device=x.device)
    c_lo = torch.zeros(n, device=x.device)
    c_hi = torch.full((n,), float("inf"), device=x.device)
    best_l2 = torch.full((n,), float("inf"), device=x.device)
    best_x = x.clone()
    check_every = max(1, steps // 10)
    for _ in range(binary_steps):
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        prev = float("inf")
        for it in range(steps):
            with torch.enable_grad():
                xa = to_x(w)
                logits = model(xa)
                l2sq = (xa - x).flatten(1).pow(2).sum(1)
                margin = _margin(logits, label, targeted)
                total = (l2sq + c * (margin + confidence).clamp_min(0)).sum()
                opt.zero_grad(set_to_none=True)
                total.backward()
            with torch.no_grad():
                ok = margin < -confidence if confidence > 0 else margin < 0
                improved = ok & (l2sq < best_l2.pow(2))
                best_l2 = torch.where(improved, l2sq.sqrt(), best_l2)
                best_x[improved] = xa.detach()[improved]
                found |= ok
            opt.step()
            if abort_early and (it + 1) % check_every == 0:
                if total.item() > prev * 0.9999:
                    break
                prev = total.item()
        c_hi = torch.where(found, torch.minimum(c_hi, c), c_hi)
        c_lo = torch.where(found, c_lo, torch.maximum(c_lo, c))
        c = torch.where(torch.isinf(c_hi), c * 10, (c_lo + c_hi) / 2)
    return best_x.detach(), torch.isfinite(best_l2)


@register_attack
class CarliniWagnerL2(WhiteBoxEvasion):
    """Carlini and Wagner's L2 attack (Carlini and Wagner 2017, Towards Evaluating the Robustness of
    Neural Networks, arXiv:1608.04644).

    An optimization attack: the smallest L2 perturbation that changes the prediction, found with
    Adam in tanh space (so the image stays valid) and a per-input binary search on the weight c of
    the margin loss. It reports how far inputs are from the decision boundary (median L2) rather
    than robust accuracy at a fixed eps.
    """

    name = "cw"
    paper = "Carlini and Wagner 2017, Towards Evaluating the Robustness of Neural Networks, arXiv:1608.04644"
    headline = "median_l2"
    Config = CWConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: CWConfig = self.config
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        model = view.model
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        n = len(y_all)
        clean_ok = torch.zeros(n, dtype=torch.bool, device=view.device)
        success = torch.zeros_like(clean_ok)
        l2 = torch.full((n,), float("inf"), device=view.device)
        for start, x, y, idx in correct_batches(model, x_all, y_all, cfg.batch_size, clean_ok, ctx):
            if len(idx):
                tgt = None
                if cfg.targeted:
                    shift = torch.randint(1, view.n_classes, (len(idx),), generator=gen).to(view.device)
                    tgt = (y[idx] + shift) % view.n_classes
                x_adv, ok = cw_l2(
                    model, x[idx], y[idx], steps=cfg.steps, binary_steps=cfg.binary_steps, initial_c=cfg.initial_c,
                    lr=cfg.lr, confidence=cfg.confidence, target=tgt, clip=view.clip, abort_early=cfg.abort_early,
                )  # fmt: skip
                success[idx + start] = ok
                l2[idx + start] = torch.where(ok, (x_adv - x[idx]).flatten(1).norm(dim=1), l2[idx + start])
        n_ok = int(clean_ok.sum().item())
        found = l2[success]
        # with nothing found the distance is at least the box diameter: report that bound, flagged
        span = (view.clip[1] - view.clip[0]) if view.clip is not None else 1.0
        bound = span * float(x_all[0].numel()) ** 0.5 if n else 0.0
        metrics = {
            "n": n,
            "clean_accuracy": clean_ok.float().mean().item() if n else 0.0,
            "attack_success_rate": int(success.sum().item()) / max(n_ok, 1),
            "median_l2": float(found.median().item()) if len(found) else bound,
            "mean_l2": float(found.mean().item()) if len(found) else bound,
            "targeted": cfg.targeted,
        }
        summary = (
            f"C&W L2: {metrics['attack_success_rate']:.1%} of {n_ok} correctly classified inputs misled, "
            f"median L2 {metrics['median_l2']:.3f} (n={n})"
        )
        flags = [] if len(found) else ["cw found no adversarial example: median_l2 is the box diameter, a lower bound"]
        return AttackResult(metrics=metrics, summary=summary, flags=flags)
