"""Fast gradient sign method."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.integrity.common import WhiteBoxEvasion, evasion_inputs
from aisec.data.dataset import Dataset
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class FGSMConfig:
    """Parameters of :class:`FGSM`.

    Attributes
    ----------
    eps:
        L-inf perturbation budget in input units (0.1 is ~1.6 grey levels of 16 on digits).
    targeted:
        Step towards a random other class instead of away from the true one.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    batch_size:
        Inputs per gradient step.
    """

    eps: float = 0.1
    targeted: bool = False
    n_samples: int | None = 500
    batch_size: int = 256

    def __post_init__(self) -> None:
        check_config(self, "fgsm", non_negative=("eps",), positive=("batch_size",), integer=("batch_size",))
        check_config(self, "fgsm", counts=("n_samples",))


def fgsm_perturb(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    targeted: bool = False,
    clip: tuple[float, float] | None = None,
) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` (away from ``y``, or towards it when targeted)."""
    if eps == 0:
        return x.clone()
    with torch.enable_grad():  # callers may hold a no_grad context; the step needs the input gradient
        x_adv = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
    step = -eps if targeted else eps
    x_adv = x + step * grad.sign()
    if clip is not None:
        x_adv = x_adv.clamp(*clip)
    return x_adv.detach()


@register_attack
class FGSM(WhiteBoxEvasion):
    """Fast gradient sign method (Goodfellow, Shlens and Szegedy 2015, arXiv:1412.6572).

    One step of size eps along the sign of the loss gradient: the cheapest white-box evasion
    attack. It measures a lower bound on the damage; stronger iterative attacks (PGD, APGD) break
    more inputs at the same eps, so a model that resists only FGSM is not robust.
    """

    name = "fgsm"
    paper = "Goodfellow et al. 2015, Explaining and Harnessing Adversarial Examples, arXiv:1412.6572"
    Config = FGSMConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: FGSMConfig = self.config
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        model = view.model
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        clean_ok = torch.zeros(len(y_all), dtype=torch.bool, device=view.device)
        adv_ok = torch.zeros_like(clean_ok)
        linf = torch.zeros(len(y_all), device=view.device)
        keep: list[torch.Tensor] = []
        n = len(y_all)
        for start in range(0, n, cfg.batch_size):
            sl = slice(start, start + cfg.batch_size)
            x, y = x_all[sl], y_all[sl]
            if cfg.targeted:
                shift = torch.randint(1, view.n_classes, y.shape, generator=gen).to(view.device)
                goal_labels = (y + shift) % view.n_classes
            else:
                goal_labels = y
            x_adv = fgsm_perturb(model, x, goal_labels, cfg.eps, targeted=cfg.targeted, clip=view.clip)
            with torch.no_grad():
                clean_ok[sl] = model(x).argmax(1) == y
                adv_ok[sl] = model(x_adv).argmax(1) == y
            linf[sl] = (x_adv - x).flatten(1).abs().amax(1)
            if sum(len(k) for k in keep) < 64:
                keep.append(x_adv.cpu())
            ctx.step(min(start + cfg.batch_size, n), n)
        clean_acc = clean_ok.float().mean().item()
        robust_acc = (clean_ok & adv_ok).float().mean().item()
        broken = (clean_ok & ~adv_ok).sum().item()
        success = broken / max(int(clean_ok.sum().item()), 1)
        metrics = {
            "eps": cfg.eps,
            "n": n,
            "clean_accuracy": clean_acc,
            "robust_accuracy": robust_acc,
            "attack_success_rate": success,
            "max_linf": float(linf.max().item()) if n else 0.0,
        }
        summary = (
            f"FGSM at eps={cfg.eps:g}: accuracy {clean_acc:.1%} -> {robust_acc:.1%} "
            f"({success:.1%} of correctly classified inputs broken, n={n})"
        )
        adv = torch.cat(keep)[:64].numpy() if keep else np.zeros((0,))
        return AttackResult(metrics=metrics, summary=summary, arrays={"x_adv": adv, "y": y_all[:64].cpu().numpy()})
