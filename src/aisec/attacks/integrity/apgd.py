"""Auto-PGD (APGD) with the cross-entropy, DLR and targeted DLR losses (Croce & Hein 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.integrity.common import WhiteBoxEvasion, correct_batches, evasion_inputs
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

Loss = Literal["ce", "dlr", "dlr-targeted"]


@dataclass(frozen=True, kw_only=True, slots=True)
class APGDConfig:
    """Parameters of :class:`APGD`.

    Attributes
    ----------
    eps:
        Radius of the perturbation ball, in input units, in the chosen norm.
    norm:
        ``"linf"`` or ``"l2"``.
    loss:
        ``"ce"`` (cross-entropy), ``"dlr"`` (difference of logits ratio) or ``"dlr-targeted"``
        (the targeted DLR loss, run once per target class).
    steps:
        Iterations per run (the paper uses 100).
    restarts:
        Random starts per input for the untargeted losses; later ones only on survivors.
    n_target_classes:
        Targets tried by ``dlr-targeted``: the classes ranked 2nd, 3rd, ... by the clean logits.
    rho:
        Fraction of improving steps below which the step size is halved at a checkpoint.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    batch_size:
        Inputs per batch.
    """

    eps: float = 0.1
    norm: Literal["linf", "l2"] = "linf"
    loss: Loss = "ce"
    steps: int = 100
    restarts: int = 1
    n_target_classes: int = 9
    rho: float = 0.75
    n_samples: int | None = 500
    batch_size: int = 512

    def __post_init__(self) -> None:
        ints = ("steps", "restarts", "n_target_classes", "batch_size")
        check_config(self, "apgd", non_negative=("eps",), integer=ints, positive=ints, unit=("rho",))
        check_choice("apgd.norm", self.norm, ("linf", "l2"))
        check_choice("apgd.loss", self.loss, ("ce", "dlr", "dlr-targeted"))
        check_config(self, "apgd", counts=("n_samples",))


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size: ``ceil(p_j * steps)`` with
    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (Croce & Hein 2020, eq. 4)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * steps, 6)) for q in p if 0 < q < 1} - {0})


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-input DLR loss (higher is closer to misclassification); targeted towards ``target`` if given.

    Shift- and scale-invariant in the logits. With fewer than 3 (untargeted) or 4 (targeted) classes
    the denominator falls back to the top-1 minus bottom logit gap.
    """
    srt, _ = logits.sort(dim=1, descending=True)
    k = logits.shape[1]
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    if target is None:
        other = logits.masked_fill(F.one_hot(y, k).bool(), float("-inf")).amax(1)
        den = srt[:, 0] - srt[:, 2] if k >= 3 else srt[:, 0] - srt[:, -1]
        return -(z_y - other) / (den + 1e-12)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    den = srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3]) if k >= 4 else srt[:, 0] - srt[:, -1]
    return -(z_y - z_t) / (den + 1e-12)


def _norm_shape(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.ndim - 1)))


def _project(
    x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, clip: tuple[float, float] | None
) -> torch.Tensor:
    d = x_adv - x
    d = d.clamp(-eps, eps) if norm == "linf" else d * (eps / _norm_shape(d)).clamp(max=1.0)
    out = x + d
    return out.clamp(*clip) if clip is not None else out


def apgd_perturb(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    loss: Loss = "ce",
    steps: int = 100,
    target: torch.Tensor | None = None,
    rho: float = 0.75,
    clip: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from a random start; returns ``(x_adv, broken)``.

    ``x_adv`` is, per input, the first misclassified point found, else the point of highest loss;
    ``broken`` says which inputs were misclassified. Inputs leave the batch once broken, so the cost
    falls as the attack succeeds. Step size starts at ``2 eps`` and halves at a checkpoint when too
    few steps improved the loss or nothing changed since the last checkpoint; a halving restarts from
    the best point. Steps use momentum 0.75 (Croce & Hein 2020, Algorithm 1).
    """
    if loss == "dlr-targeted" and target is None:
        raise ConfigError("apgd: the dlr-targeted loss needs target classes")
    n = len(y)
    x_out = x.clone()
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    if eps == 0 or n == 0:
        return x_out, broken

    def loss_grad(xa: torch.Tensor, yy: torch.Tensor, tt: torch.Tensor | None):  # type: ignore[no-untyped-def]
        with torch.enable_grad():
            xa = xa.detach().requires_grad_(True)
            logits = model(xa)
            li = F.cross_entropy(logits, yy, reduction="none") if loss == "ce" else dlr_loss(logits, yy, tt)
            (g,) = torch.autograd.grad(li.sum(), xa)
        return li.detach(), g, logits.detach().argmax(1) != yy

    def direction(g: torch.Tensor) -> torch.Tensor:
        return g.sign() if norm == "linf" else g / _norm_shape(g)

    noise = torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1
    if norm == "l2":
        noise = noise / _norm_shape(noise)
    idx = torch.arange(n, device=x.device)  # rows of the original batch still under attack
    xs, ys = x, y
    ts = target
    cur = _project(x + eps * noise, x, eps, norm, clip)
    shape1 = (-1, *([1] * (x.ndim - 1)))
    eta = torch.full((n,), 2.0 * eps, device=x.device)
    li, g, hit = loss_grad(cur, ys, ts)
    best_l, best_x, best_g = li.clone(), cur.clone(), g.clone()
    prev = cur.clone()
    n_better = torch.zeros(n, device=x.device)
    last_eta, last_best = eta.clone(), best_l.clone()
    checks = set(checkpoints(steps))
    prev_check = 0
    for k in range(steps + 1):
        if hit.any():  # record and drop the inputs broken at the current point
            x_out[idx[hit]] = cur[hit]
            broken[idx[hit]] = True
            keep = ~hit
            idx, xs, ys, cur, prev, g, li = idx[keep], xs[keep], ys[keep], cur[keep], prev[keep], g[keep], li[keep]
            eta, best_l, best_x, best_g = eta[keep], best_l[keep], best_x[keep], best_g[keep]
            n_better, last_eta, last_best = n_better[keep], last_eta[keep], last_best[keep]
            ts = ts[keep] if ts is not None else None
        if len(idx) == 0 or k == steps:
            break
        z = _project(cur + eta.view(shape1) * direction(g), xs, eps, norm, clip)
        nxt = z if k == 0 else _project(cur + 0.75 * (z - cur) + 0.25 * (cur - prev), xs, eps, norm, clip)
        prev = cur
        li_new, g, hit = loss_grad(nxt, ys, ts)
        n_better += (li_new > li).float()
        li, cur = li_new, nxt
        better = li > best_l
        best_l = torch.where(better, li, best_l)
        best_x[better], best_g[better] = cur[better], g[better]
        if k + 1 in checks:
            halve = (n_better < rho * (k + 1 - prev_check)) | ((last_eta == eta) & (last_best == best_l))
            last_eta, last_best = eta.clone(), best_l.clone()
            eta = torch.where(halve, eta / 2, eta)
            cur = torch.where(halve.view(shape1), best_x, cur)
            g = torch.where(halve.view(shape1), best_g, g)
            n_better.zero_()
            prev_check = k + 1
    if len(idx):
        x_out[idx] = best_x
    return x_out.detach(), broken


def apgd_attack(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    loss: Loss = "ce",
    steps: int = 100,
    restarts: int = 1,
    n_target_classes: int = 9,
    rho: float = 0.75,
    clip: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """APGD with restarts (untargeted) or one run per target class (``dlr-targeted``), each only on
    the inputs still unbroken; returns ``(x_adv, broken)``."""
    x_adv, broken = x.clone(), torch.zeros(len(y), dtype=torch.bool, device=x.device)
    if loss == "dlr-targeted":
        with torch.no_grad():
            ranked = model(x).argsort(dim=1, descending=True)
        runs = min(n_target_classes, ranked.shape[1] - 1)
    else:
        runs = restarts
    for r in range(runs):
        todo = (~broken).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        tgt = ranked[todo, r + 1] if loss == "dlr-targeted" else None
        xa, hit = apgd_perturb(
            model, x[todo], y[todo], eps=eps, norm=norm, loss=loss, steps=steps, target=tgt, rho=rho,
            clip=clip, generator=generator,
        )  # fmt: skip
        if r == 0:
            x_adv[todo] = xa
        else:
            x_adv[todo[hit]] = xa[hit]
        broken[todo] = hit
    return x_adv, broken


@register_attack
class APGD(WhiteBoxEvasion):
    """Auto-PGD (Croce and Hein 2020, Reliable evaluation of adversarial robustness with an ensemble
    of diverse parameter-free attacks, arXiv:2003.01690).

    PGD without a step size to tune: the step starts at 2 eps and halves at checkpoints when the loss
    stops improving, restarting from the best point, with momentum. The cross-entropy loss (APGD-CE)
    and the scale-invariant difference-of-logits-ratio loss (APGD-DLR, untargeted or targeted at the
    top-ranked other classes) are the white-box half of AutoAttack.
    """

    name = "apgd"
    paper = "Croce and Hein 2020, Reliable evaluation of adversarial robustness, arXiv:2003.01690"
    Config = APGDConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: APGDConfig = self.config
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        model = view.model
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        n = len(y_all)
        clean_ok = torch.zeros(n, dtype=torch.bool, device=view.device)
        broken = torch.zeros_like(clean_ok)
        size = torch.zeros(n, device=view.device)
        for start, x, y, idx in correct_batches(model, x_all, y_all, cfg.batch_size, clean_ok, ctx):
            if len(idx):
                x_adv, hit = apgd_attack(
                    model, x[idx], y[idx], eps=cfg.eps, norm=cfg.norm, loss=cfg.loss, steps=cfg.steps,
                    restarts=cfg.restarts, n_target_classes=cfg.n_target_classes, rho=cfg.rho,
                    clip=view.clip, generator=gen,
                )  # fmt: skip
                d = (x_adv - x[idx]).flatten(1)
                size[idx + start] = d.abs().amax(1) if cfg.norm == "linf" else d.norm(dim=1)
                broken[idx + start] = hit
        clean_acc = clean_ok.float().mean().item() if n else 0.0
        robust_acc = (clean_ok & ~broken).float().mean().item() if n else 0.0
        success = broken.sum().item() / max(int(clean_ok.sum().item()), 1)
        metrics = {
            "eps": cfg.eps,
            "norm": cfg.norm,
            "loss": cfg.loss,
            "steps": cfg.steps,
            "n": n,
            "clean_accuracy": clean_acc,
            "robust_accuracy": robust_acc,
            "attack_success_rate": success,
            "max_perturbation": float(size.max().item()) if n else 0.0,
        }
        summary = (
            f"APGD-{cfg.loss.upper()} {cfg.norm} at eps={cfg.eps:g} ({cfg.steps} steps): accuracy "
            f"{clean_acc:.1%} -> {robust_acc:.1%} ({success:.1%} of correctly classified inputs broken, n={n})"
        )
        return AttackResult(metrics=metrics, summary=summary)
