"""Worst-case robust accuracy over a suite of evasion attacks and an eps grid (AutoAttack-style)."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.integrity.apgd import apgd_attack
from aisec.attacks.integrity.common import WhiteBoxEvasion, evasion_inputs
from aisec.attacks.integrity.fgsm import fgsm_perturb
from aisec.attacks.integrity.pgd import pgd_attack
from aisec.attacks.integrity.sanity import blackbox_beats_whitebox, curve_does_not_fall, unbounded_not_zero
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability
from aisec.data.dataset import Dataset
from aisec.errors import BudgetExceededError, ConfigError
from aisec.registry import attacks as registered_attacks
from aisec.registry import register_attack
from aisec.targets.base import TargetView

log = logging.getLogger(__name__)

#: Attacks the ensemble runs itself, on the survivors only, batched.
BUILTIN = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-dlr-targeted")
#: Black-box attacks added to the default suite when they are registered.
OPTIONAL = ("square",)


@dataclass(frozen=True, kw_only=True, slots=True)
class RobustEvalConfig:
    """Parameters of :class:`RobustEval`.

    Attributes
    ----------
    eps:
        The eps grid; ``None`` takes (eps/2, eps, 2 eps) around the threat model's epsilon, else
        (0.05, 0.1, 0.2) times the width of the input range.
    norm:
        ``"linf"`` or ``"l2"``.
    attacks:
        The suite, cheapest first; ``None`` is apgd-ce, apgd-dlr-targeted, then square when that
        black-box attack is registered. Built in: fgsm, pgd, apgd-ce, apgd-dlr, apgd-dlr-targeted;
        any other registered attack with an ``eps`` parameter runs after them.
    steps:
        Iterations of each gradient attack (APGD and PGD).
    n_target_classes:
        Target classes of apgd-dlr-targeted.
    unbounded_check:
        Also run APGD-CE at an eps that allows any input; it must reach ~0% robust accuracy.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    batch_size:
        Inputs per batch.
    """

    eps: tuple[float, ...] | None = None
    norm: Literal["linf", "l2"] = "linf"
    attacks: tuple[str, ...] | None = None
    steps: int = 100
    n_target_classes: int = 9
    unbounded_check: bool = True
    n_samples: int | None = 500
    batch_size: int = 1024

    def __post_init__(self) -> None:
        ints = ("steps", "n_target_classes", "batch_size")
        check_config(self, "robust-eval", integer=ints, positive=ints)
        check_choice("robust-eval.norm", self.norm, ("linf", "l2"))
        check_config(self, "robust-eval", counts=("n_samples",))
        for name in ("eps", "attacks"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
                raise ConfigError(f"robust-eval.{name}: expected a non-empty list, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.eps is not None:
            for e in self.eps:
                if isinstance(e, bool) or not isinstance(e, int | float) or not e > 0:
                    raise ConfigError(f"robust-eval.eps: expected numbers > 0, got {e!r}")
        if self.attacks is not None:
            for a in self.attacks:
                if not isinstance(a, str) or a == "robust-eval":
                    raise ConfigError(f"robust-eval.attacks: {a!r} cannot be part of the suite")


def _builtin_attack(
    name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, cfg: RobustEvalConfig,
    clip: tuple[float, float] | None, gen: torch.Generator,
) -> torch.Tensor:  # fmt: skip
    """Which of ``x`` the built-in attack ``name`` breaks at ``eps``."""
    if name.startswith("apgd-"):
        loss = name.removeprefix("apgd-")
        _, hit = apgd_attack(
            model, x, y, eps=eps, norm=cfg.norm, loss=loss, steps=cfg.steps,  # type: ignore[arg-type]
            n_target_classes=cfg.n_target_classes, clip=clip, generator=gen,
        )  # fmt: skip
        return hit
    if name == "fgsm":
        if cfg.norm != "linf":
            raise ConfigError("robust-eval: fgsm is an L-inf attack; use pgd or apgd for norm l2")
        x_adv = fgsm_perturb(model, x, y, eps, clip=clip)
    else:
        _, hit = pgd_attack(model, x, y, eps=eps, norm=cfg.norm, steps=cfg.steps, clip=clip, generator=gen)
        return hit
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


@register_attack
class RobustEval(WhiteBoxEvasion):
    """Worst-case robust accuracy over a suite of attacks, per eps (Croce and Hein 2020, AutoAttack,
    arXiv:2003.01690), with the evaluation checks of Carlini et al. 2019 (arXiv:1902.06705).

    An input counts as robust at an eps only when every attack in the suite fails on it; cheap
    attacks run first and later ones only on the survivors. The robust accuracy per eps is the
    curve the report plots. The finding is flagged when the curve does not fall with eps, when an
    unbounded attack does not reach ~0%, or when a black-box attack breaks inputs the white-box
    attacks could not: signs of gradient masking.
    """

    name = "robust-eval"
    paper = "Croce and Hein 2020, Reliable evaluation of adversarial robustness (AutoAttack), arXiv:2003.01690"
    Config = RobustEvalConfig

    def suite(self) -> tuple[str, ...]:
        """The attacks to run, built-ins first, each checked against the registry."""
        cfg: RobustEvalConfig = self.config
        known = registered_attacks()
        if cfg.attacks is None:
            return ("apgd-ce", "apgd-dlr-targeted", *(a for a in OPTIONAL if a in known))
        unknown = [a for a in cfg.attacks if a not in BUILTIN and a not in known]
        if unknown:
            allowed = ", ".join([*BUILTIN, *(k for k in known if k not in BUILTIN and k != self.name)])
            raise ConfigError(f"robust-eval.attacks: unknown {', '.join(unknown)}; allowed: {allowed}")
        builtin = [a for a in cfg.attacks if a in BUILTIN]
        return (*builtin, *(a for a in cfg.attacks if a not in BUILTIN))

    def grid(self, view: TargetView, ctx: AttackContext) -> tuple[tuple[float, ...], float]:
        """The eps grid and the eps whose robust accuracy is the headline."""
        cfg: RobustEvalConfig = self.config
        tm_eps = ctx.threat_model.epsilon if ctx.threat_model is not None else None
        if cfg.eps is not None:
            grid = tuple(sorted(cfg.eps))
            return grid, (tm_eps if tm_eps in grid else grid[len(grid) // 2])
        if tm_eps:
            return (tm_eps / 2, tm_eps, 2 * tm_eps), tm_eps
        span = view.clip[1] - view.clip[0] if view.clip is not None else 1.0
        return (0.05 * span, 0.1 * span, 0.2 * span), 0.1 * span

    def _external(
        self, name: str, view: TargetView, data: Dataset, x: torch.Tensor, y: torch.Tensor, eps: float,
        ctx: AttackContext,
    ) -> tuple[torch.Tensor | None, int]:  # fmt: skip
        """Run a registered attack on ``x``: (which it broke, or None when it only reports a count; how many)."""
        cls = registered_attacks()[name]
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        if "eps" not in fields:
            raise ConfigError(f"robust-eval.attacks: {name} has no eps parameter and cannot join the suite")
        params: dict[str, Any] = {"eps": eps, "norm": self.config.norm, "n_samples": None}
        attack = cls(**{k: v for k, v in params.items() if k in fields})
        sub = dataclasses.replace(data, x_test=x.detach().cpu(), y_test=y.detach().cpu())
        attack.check(view, sub)
        result = attack._run(view, sub, AttackContext(seed=ctx.seed, threat_model=ctx.threat_model))
        mask = result.arrays.get("broken")
        if mask is not None and len(mask) == len(y):
            hit = torch.as_tensor(mask, dtype=torch.bool, device=y.device)
            return hit, int(hit.sum().item())
        robust = float(result.metrics.get("robust_accuracy", 1.0))
        return None, len(y) - round(robust * len(y))

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: RobustEvalConfig = self.config
        suite = self.suite()
        grid, head_eps = self.grid(view, ctx)
        x_all, y_all = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        model = view.model
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        n = len(y_all)
        with torch.no_grad():
            clean_ok = torch.cat([model(x_all[i : i + cfg.batch_size]).argmax(1) for i in range(0, n, cfg.batch_size)])
            clean_ok = clean_ok == y_all if n else torch.zeros(0, dtype=torch.bool)
        clean_acc = clean_ok.float().mean().item() if n else 0.0
        known = registered_attacks()
        curve: list[float] = []
        breakdown: list[dict[str, Any]] = []
        flags: list[str] = []
        total, done = len(grid) * len(suite) + int(cfg.unbounded_check), 0
        for eps in grid:
            alive = clean_ok.clone()
            white_acc: float | None = None
            count_only: int | None = None  # survivors left by attacks that report only a count
            for name in suite:
                start = time.perf_counter()
                todo = alive.nonzero().squeeze(1)
                white = name in BUILTIN or Capability.GRADIENTS in known[name].needs
                if not white and white_acc is None:
                    white_acc = alive.float().mean().item() if n else 0.0
                broken_now = 0
                if len(todo):
                    try:
                        if name in BUILTIN:
                            hits = [
                                _builtin_attack(name, model, x_all[c], y_all[c], eps, cfg, view.clip, gen)
                                for c in todo.split(cfg.batch_size)
                            ]
                            hit: torch.Tensor | None = torch.cat(hits)
                            broken_now = int(hit.sum().item())
                        else:
                            hit, broken_now = self._external(name, view, data, x_all[todo], y_all[todo], eps, ctx)
                    except BudgetExceededError as exc:
                        flags.append(f"{name} at eps={eps:g} stopped at the query budget: {exc}")
                        hit, broken_now = None, 0
                    if hit is not None:
                        alive[todo[hit]] = False
                    elif broken_now:
                        left = len(todo) - broken_now
                        count_only = left if count_only is None else min(count_only, left)
                breakdown.append({"eps": eps, "attack": name, "attacked": len(todo), "broken": broken_now})
                log.debug("robust-eval: %s at eps=%g took %.3f s", name, eps, time.perf_counter() - start)
                done += 1
                ctx.step(done, total)
            robust = int(alive.sum().item()) if count_only is None else min(int(alive.sum().item()), count_only)
            acc = robust / n if n else 0.0
            curve.append(acc)
            if white_acc is not None:
                flags += blackbox_beats_whitebox(white_acc, acc, name=f"black-box attacks at eps={eps:g}")
        flags += curve_does_not_fall(grid, curve)
        metrics: dict[str, Any] = {
            "n": n,
            "norm": cfg.norm,
            "attacks": list(suite),
            "clean_accuracy": clean_acc,
            "eps": head_eps,
            "robust_accuracy": curve[grid.index(head_eps)],
            "curve_eps": list(grid),
            "curve_robust_accuracy": curve,
            "per_attack": breakdown,
        }
        if cfg.unbounded_check:
            metrics.update(self._unbounded(view, x_all, y_all, clean_ok, cfg, gen))
            flags += unbounded_not_zero(metrics["unbounded_eps"], metrics["unbounded_robust_accuracy"])
            ctx.step(total, total)
        if total == 0:
            ctx.step(0, 0)
        summary = (
            f"worst case over {', '.join(suite)} ({cfg.norm}): accuracy {clean_acc:.1%} -> "
            + ", ".join(f"{a:.1%} at eps={e:g}" for e, a in zip(grid, curve, strict=True))
            + f" (n={n})"
            + (f"; {len(flags)} sanity flag(s)" if flags else "")
        )
        return AttackResult(metrics=metrics, summary=summary, flags=flags)

    def _unbounded(
        self, view: TargetView, x: torch.Tensor, y: torch.Tensor, clean_ok: torch.Tensor, cfg: RobustEvalConfig,
        gen: torch.Generator,
    ) -> dict[str, float]:  # fmt: skip
        """APGD-CE at an eps that reaches any input of the range, on up to 100 correctly classified inputs."""
        span = view.clip[1] - view.clip[0] if view.clip is not None else 10.0
        eps = span if cfg.norm == "linf" else span * float(x[0].numel()) ** 0.5
        idx = clean_ok.nonzero().squeeze(1)[:100]
        if len(idx) == 0:
            return {"unbounded_eps": eps, "unbounded_robust_accuracy": 0.0}
        _, hit = apgd_attack(
            view.model, x[idx], y[idx], eps=eps, norm=cfg.norm, loss="ce", steps=max(10, cfg.steps // 4),
            clip=view.clip, generator=gen,
        )  # fmt: skip
        return {"unbounded_eps": eps, "unbounded_robust_accuracy": 1.0 - hit.float().mean().item()}
