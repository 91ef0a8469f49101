"""Jacobian-based dataset augmentation: the synthetic-query substitute attack."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.confidentiality import _thief_nets as tn
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class JBDAConfig:
    """Parameters of :class:`JBDA`.

    Attributes
    ----------
    queries:
        Queries to spend (fewer when the budget has less left).
    seed_size:
        Natural inputs the attacker starts from (drawn from its data sample).
    step:
        Size of the Jacobian step lambda, in input units (a fraction of the clip range when clipped).
    tau:
        The step's sign flips every ``tau`` rounds (Papernot et al.'s periodic step size).
    steps:
        Optimisation steps per training of the substitute, plus two per queried point.
    n_eval:
        Held-out inputs on which the assessor measures fidelity (all when None).
    """

    queries: int = 100
    seed_size: int = 20
    step: float = 0.1
    tau: int = 3
    steps: int = 100
    n_eval: int | None = 500

    def __post_init__(self) -> None:
        check_config(
            self, "jbda", integer=("queries", "seed_size", "tau", "steps"), positive=("queries", "seed_size", "tau", "steps", "step")
        )  # fmt: skip
        check_config(self, "jbda", counts=("n_eval",))


def _jacobian_step(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """x + lam * sign(d F_label(x) / dx): move along the substitute's gradient of the victim's label."""
    x = x.clone().requires_grad_(True)
    out = model(x).gather(1, labels[:, None]).sum()
    (grad,) = torch.autograd.grad(out, x)
    return (x + lam * grad.sign()).detach()


@register_attack
class JBDA(Attack):
    """Jacobian-based dataset augmentation (Papernot et al. 2017, Practical Black-Box Attacks against
    Machine Learning, AsiaCCS, arXiv:1602.02697).

    From a small seed of natural inputs (the grey-box attacker's data sample), the substitute is
    trained on the victim's answers, then every known point is pushed a step ``lambda`` along the sign
    of the substitute's gradient of the victim's label; the new, synthetic points are queried and
    the set doubles each round until the budget is spent (the last round takes a random subset).
    The step's sign alternates every ``tau`` rounds. The thief trains on the probabilities when
    the API returns them, else on labels, as in the paper.
    """

    name = "jbda"
    goal = Goal.CONFIDENTIALITY
    needs = frozenset({Capability.LABELS, Capability.DATA_SAMPLE})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0024.002"
    owasp = "ML05"
    paper = "Papernot et al. 2017, Practical Black-Box Attacks against Machine Learning, arXiv:1602.02697"
    headline = "fidelity"
    worse_when = "higher"
    min_queries = 2
    Config = JBDAConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: JBDAConfig = self.config
        pool = tn.attacker_pool(view, data)
        remaining = view.budget.remaining
        total = min(cfg.queries, remaining if remaining is not None else cfg.queries)
        gen = torch.Generator().manual_seed(ctx.seed)
        x = pool[torch.randperm(len(pool), generator=gen)[: min(cfg.seed_size, total)]]
        y = tn.query_targets(view, x)
        lam = cfg.step * ((view.clip[1] - view.clip[0]) if view.clip is not None else float(pool.std()))
        shape = view.input_shape or pool.shape[1:]
        curve_q: list[int] = []
        curve_f: list[float] = []
        rnd = 0
        while True:
            torch.manual_seed(ctx.seed)
            model = tn.train_thief(
                tn.make_thief(shape, view.n_classes), x, y, clip=view.clip, steps=cfg.steps + 2 * len(x), seed=ctx.seed
            )
            fid, accuracy = tn.fidelity_and_accuracy(view, model, data, cfg.n_eval, ctx.seed)
            curve_q.append(len(x))
            curve_f.append(fid)
            left = total - len(x)
            ctx.step(len(x), total)
            if left <= 0:
                break
            sign = -1.0 if (rnd // cfg.tau) % 2 else 1.0
            src = torch.randperm(len(x), generator=gen)[: min(len(x), left)]
            new = _jacobian_step(model, x[src], y[src].argmax(1), sign * lam)
            if view.clip is not None:
                new = new.clamp(*view.clip)
            x = torch.cat([x, new])
            y = torch.cat([y, tn.query_targets(view, new)])
            rnd += 1
        soft = Capability.PROBABILITIES in view.capabilities
        metrics = {
            "fidelity": curve_f[-1],
            "thief_accuracy": accuracy,
            "queries": len(x),
            "queries_to_90pct_fidelity": tn.first_reaching(curve_q, curve_f, 0.9),
            "curve_queries": curve_q,
            "curve_fidelity": curve_f,
            "soft_labels": soft,
            "augmentation_rounds": rnd,
        }
        summary = (
            f"jbda: {len(x)} queries ({cfg.seed_size} natural, the rest synthetic) give a substitute that agrees "
            f"with the target on {curve_f[-1]:.1%} of held-out inputs"
        )
        flags = [] if len(x) >= cfg.queries else [f"spent {len(x)} of the {cfg.queries} queries asked (budget)"]
        return AttackResult(
            metrics=metrics,
            summary=summary,
            flags=flags,
            arrays={"curve": np.array([curve_q, curve_f], dtype=np.float64)},
        )
