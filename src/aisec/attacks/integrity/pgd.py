"""Projected gradient descent, L-inf and L2, with random start, restarts and a targeted mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aisec.attacks.base import AttackContext, AttackResult
from aisec.attacks.integrity.common import WhiteBoxEvasion, evasion_inputs
from aisec.attacks.integrity.pgd_config import PGDConfig
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


def _l2(v: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm, shaped to broadcast over the input."""
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.ndim - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _l2(delta)).clamp(max=1.0)


def pgd_perturb(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    alpha: float | None = None,
    random_start: bool = True,
    targeted: bool = False,
    clip: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One PGD run: ``steps`` projected steps on the cross-entropy (towards ``y`` when targeted)."""
    if eps == 0 or steps == 0:
        return x.clone()
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    delta = _start(x, eps, norm, random_start, clip, generator)
    sign = -1.0 if targeted else 1.0
    with torch.enable_grad():
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(x + delta), y)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                step = grad.sign() if norm == "linf" else grad / _l2(grad)
                delta = _project(delta + sign * alpha * step, eps, norm)
                if clip is not None:
                    delta = (x + delta).clamp(*clip) - x
    return (x + delta).detach()


def pgd_attack(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    alpha: float | None = None,
    random_start: bool = True,
    targeted: bool = False,
    clip: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    reinvest: bool = False,
    check_every: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD for evaluation: ``(x_adv, reached)``, an input counting as broken at the first iterate that fools the model.

    The same trajectory as :func:`pgd_perturb` (same start, same steps), but each step's forward
    pass also tells which inputs the current iterate already fools (reaches ``y`` when targeted);
    those keep that iterate and leave the batch. An input broken at any iterate counts, not only at
    the last one, and broken inputs cost no further passes.

    With ``reinvest`` (and a random start) the rows freed by broken inputs are refilled, while at
    least a quarter of the steps are left: once the batch is an eighth below seven eighths of its
    first size, it is topped up to that size with fresh random starts of the surviving inputs (those
    with the fewest starts first). The call then spends at most the gradient passes of one plain
    run, ``steps * len(x)``, in as many forward passes, and breaks at least what that run breaks.

    ``check_every`` is how often (in steps) broken inputs leave the batch and the batch is refilled; the
    last step always checks. Leaving the batch needs the host to read which rows broke, a device
    synchronisation: on a GPU, where a small model's step costs kernel launches more than arithmetic,
    that read each step made PGD 1.5x slower than torchattacks (H200, ``benchmarks/results/evasion.json``
    under ``"gpu"``). Between checks every row keeps stepping and each row's first fooling iterate is held
    on the device, so which inputs count as broken (and where) does not depend on ``check_every`` unless
    refills differ. ``None``: every step on the CPU, where a smaller batch is less arithmetic, and
    ``max(1, steps // 4)`` elsewhere.
    """
    n = len(y)
    x_adv = x.clone()
    reached = torch.zeros(n, dtype=torch.bool, device=x.device)
    if eps == 0 or steps == 0 or n == 0:
        if n:
            with torch.no_grad():
                pred = model(x).argmax(1)
            reached = pred == y if targeted else pred != y
        return x_adv, reached
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    reinvest = reinvest and random_start
    every = check_every if check_every is not None else 1 if x.device.type == "cpu" else max(1, steps // 4)
    if every < 1:
        raise ConfigError(f"pgd check_every: {every} must be at least 1")
    sign = -1.0 if targeted else 1.0
    active = torch.arange(n, device=x.device)  # the input each row of the batch attacks
    cap = n - n // 8  # refilled batches stay an eighth smaller: never slower than the plain run
    xa, ya = x, y
    bounds = _box(x, eps, norm, clip)  # each input's L-inf box; a row's is its input's
    box = bounds
    xi = _enter(x + _start(x, eps, norm, random_start, clip, generator), box, clip)  # the iterate of each row
    lazy = every > 1  # rows that fooled since the last check (held) and their first fooling iterate, on the device
    held, row_adv = torch.zeros(n, dtype=torch.bool, device=x.device), x
    with torch.enable_grad():
        for t in range(steps):
            xi.requires_grad_(True)
            logits = model(xi)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, ya), xi)
            with torch.no_grad():
                xi = xi.detach()
                pred = logits.argmax(1)
                done = pred == ya if targeted else pred != ya
                check = every == 1 or (t + 1) % every == 0 or t == steps - 1
                if lazy:  # hold each row's first fooling iterate, no sync
                    row_adv = torch.where((done & ~held).view(-1, *([1] * (x.ndim - 1))), xi, row_adv)
                    done = held = held | done
                # keep the fooling iterate and drop those inputs (all their rows) from the batch
                if check and done.any():
                    rows = active[done]
                    x_adv[rows] = row_adv[done] if lazy else xi[done]
                    reached[rows] = True
                    keep = ~reached[active]
                    active, xa, ya, xi, grad = active[keep], xa[keep], ya[keep], xi[keep], grad[keep]
                    box = _rows(bounds, active)
                    if lazy:
                        held, row_adv = held[keep], row_adv[keep]
                if norm == "linf":
                    xi = xi.add(grad.sign(), alpha=sign * alpha)
                else:
                    xi = xa + _project(xi + (sign * alpha) * grad / _l2(grad) - xa, eps, "l2")
                xi = _enter(xi, box, clip)
                refill = reinvest and check and cap - len(active) >= max(1, n // 8)
                if refill and steps - t - 1 >= max(1, steps // 4):
                    fresh = _refill(active, reached, cap - len(active))
                    if len(fresh):
                        xf = x[fresh]
                        start = _enter(xf + _start(xf, eps, norm, True, clip, generator), _rows(bounds, fresh), clip)
                        xi = torch.cat([xi, start])
                        active, xa, ya = torch.cat([active, fresh]), torch.cat([xa, xf]), torch.cat([ya, y[fresh]])
                        box = _rows(bounds, active)
                        if lazy:
                            held = torch.cat([held, torch.zeros_like(fresh, dtype=torch.bool)])
                            row_adv = torch.cat([row_adv, xf])
            if not len(active):
                return x_adv, reached
    with torch.no_grad():
        pred = model(xi).argmax(1)
        fooled = pred == ya if targeted else pred != ya
        x_adv[active[~fooled]] = xi[~fooled]  # an input's fooling row last: it wins over its other rows
        x_adv[active[fooled]] = xi[fooled]
        reached[active[fooled]] = True
    return x_adv, reached


def _box(
    x: torch.Tensor, eps: float, norm: str, clip: tuple[float, float] | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """L-inf: the per-coordinate bounds of the eps-ball within the clip range, so that one clamp is both the
    projection and the clip. ``None`` for L2 (projected apart, then clipped)."""
    if norm != "linf":
        return None
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = lo.clamp_min(clip[0]), hi.clamp_max(clip[1])
    return lo, hi


def _rows(
    bounds: tuple[torch.Tensor, torch.Tensor] | None, inputs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The boxes of the rows attacking ``inputs`` (indices into the batch the bounds were computed for)."""
    return None if bounds is None else (bounds[0][inputs], bounds[1][inputs])


def _enter(
    xi: torch.Tensor, box: tuple[torch.Tensor, torch.Tensor] | None, clip: tuple[float, float] | None
) -> torch.Tensor:
    """``xi`` put back into the feasible set: the L-inf box, else the clip range (L2 projects before this)."""
    if box is not None:
        return torch.clamp(xi, box[0], box[1])
    return xi.clamp(*clip) if clip is not None else xi


def _start(
    x: torch.Tensor, eps: float, norm: str, random: bool, clip: tuple[float, float] | None, gen: torch.Generator | None
) -> torch.Tensor:
    """The first perturbation: uniform in the L-inf ball (or a random direction of the L2 ball), within the clip."""
    delta = torch.zeros_like(x)
    if random:
        noise = torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1
        delta = noise * eps if norm == "linf" else _project(noise, eps, "l2")
    if clip is not None:
        delta = (x + delta).clamp(*clip) - x
    return delta


def _refill(active: torch.Tensor, reached: torch.Tensor, free: int) -> torch.Tensor:
    """Inputs for ``free`` new rows: the unbroken inputs, those with the fewest rows first, round-robin."""
    alive = (~reached).nonzero().squeeze(1)
    if not len(alive) or free <= 0:
        return alive[:0]
    rows = torch.bincount(active, minlength=len(reached))[alive]
    order = alive[torch.argsort(rows, stable=True)]
    return order.repeat(-(-free // len(order)))[:free]


@register_attack
class PGD(WhiteBoxEvasion):
    """Projected gradient descent (Madry et al. 2018, Towards Deep Learning Models Resistant to
    Adversarial Attacks, arXiv:1706.06083).

    Iterated signed-gradient (L-inf) or normalized-gradient (L2) steps, each projected back onto the
    eps-ball and the valid input range, from a random start, with restarts: the standard first-order
    white-box attack. An input counts as robust only when no iterate of any restart breaks it; an
    input leaves the batch at the first iterate that breaks it.
    """

    name = "pgd"
    paper = "Madry et al. 2018, Towards Deep Learning Models Resistant to Adversarial Attacks, arXiv:1706.06083"
    Config = PGDConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: PGDConfig = self.config
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        model = view.model
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        n = len(y_all)
        clean_ok = torch.zeros(n, dtype=torch.bool, device=view.device)
        broken = torch.zeros_like(clean_ok)
        size = torch.zeros(n, device=view.device)
        total = max(1, n * cfg.restarts)
        for start in range(0, n, cfg.batch_size):
            sl = slice(start, start + cfg.batch_size)
            x, y = x_all[sl], y_all[sl]
            goal = y
            if cfg.targeted:
                goal = (y + torch.randint(1, view.n_classes, y.shape, generator=gen).to(view.device)) % view.n_classes
            with torch.no_grad():
                clean_ok[sl] = model(x).argmax(1) == y
            for r in range(cfg.restarts):
                todo = clean_ok[sl] & ~broken[sl]  # later restarts only on survivors
                if not todo.any():
                    break
                idx = todo.nonzero().squeeze(1)
                x_adv, hit = pgd_attack(
                    model, x[idx], goal[idx], eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, alpha=cfg.alpha,
                    random_start=cfg.random_start, targeted=cfg.targeted, clip=view.clip, generator=gen,
                    reinvest=cfg.reinvest,
                )  # fmt: skip
                delta = (x_adv - x[idx]).flatten(1)
                size_b = delta.abs().amax(1) if cfg.norm == "linf" else delta.norm(dim=1)
                rows = idx + start
                broken[rows] |= hit
                size[rows] = torch.maximum(size[rows], size_b)
                ctx.step(min(total, start * cfg.restarts + (r + 1) * len(y)), total)
        clean_acc = clean_ok.float().mean().item() if n else 0.0
        robust_acc = (clean_ok & ~broken).float().mean().item() if n else 0.0
        success = broken.sum().item() / max(int(clean_ok.sum().item()), 1)
        metrics = {
            "eps": cfg.eps,
            "norm": cfg.norm,
            "steps": cfg.steps,
            "restarts": cfg.restarts,
            "reinvest": cfg.reinvest,
            "targeted": cfg.targeted,
            "n": n,
            "clean_accuracy": clean_acc,
            "robust_accuracy": robust_acc,
            "attack_success_rate": success,
            "max_perturbation": float(size.max().item()) if n else 0.0,
        }
        kind = "targeted " if cfg.targeted else ""
        summary = (
            f"PGD-{cfg.norm} {kind}at eps={cfg.eps:g} ({cfg.steps} steps x {cfg.restarts}): accuracy "
            f"{clean_acc:.1%} -> {robust_acc:.1%} ({success:.1%} of correctly classified inputs broken, n={n})"
        )
        return AttackResult(metrics=metrics, summary=summary)
