"""Knockoff Nets: stealing a model by querying it on the attacker's own natural data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.confidentiality import _thief_nets as tn
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class KnockoffConfig:
    """Parameters of :class:`Knockoff`.

    Attributes
    ----------
    queries:
        Queries to spend (fewer when the budget or the pool has less).
    sampling:
        ``random`` draws pool points uniformly; ``adaptive`` learns, with a gradient bandit, which
        region of the pool (k-means clusters stand in for the paper's label hierarchy) pays.
    rounds:
        Checkpoints at which the thief is trained and measured (the fidelity curve).
    batch:
        Queries per bandit step (adaptive sampling).
    clusters:
        Arms of the bandit (adaptive sampling).
    steps:
        Optimisation steps per training of the thief, plus two per queried point.
    n_eval:
        Held-out inputs on which the assessor measures fidelity (all when None).
    """

    queries: int = 100
    sampling: Literal["random", "adaptive"] = "random"
    rounds: int = 1
    batch: int = 10
    clusters: int = 10
    steps: int = 150
    n_eval: int | None = 500

    def __post_init__(self) -> None:
        check_config(
            self,
            "knockoff",
            integer=("queries", "rounds", "batch", "clusters", "steps"),
            positive=("queries", "rounds", "batch", "clusters", "steps"),
        )
        check_choice("knockoff.sampling", self.sampling, ("random", "adaptive"))
        check_config(self, "knockoff", counts=("n_eval",))


def _adaptive_order(
    view: TargetView, pool: torch.Tensor, total: int, cfg: KnockoffConfig, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query ``total`` pool points chosen by a gradient bandit over pool clusters; returns indices and answers."""
    from sklearn.cluster import KMeans

    flat = pool.reshape(len(pool), -1).numpy()
    k = min(cfg.clusters, len(pool))
    arm_of = torch.as_tensor(KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(flat))
    gen = torch.Generator().manual_seed(seed)
    prefs = torch.zeros(k)
    baseline, t = 0.0, 0
    used = torch.zeros(len(pool), dtype=torch.bool)
    thief = tn.make_thief(view.input_shape or pool.shape[1:], view.n_classes)
    opt = torch.optim.Adam(thief.parameters(), lr=3e-3)
    chosen: list[torch.Tensor] = []
    answers: list[torch.Tensor] = []
    while sum(len(c) for c in chosen) < total:
        n = min(cfg.batch, total - sum(len(c) for c in chosen))
        policy = F.softmax(prefs, dim=0)
        arms = torch.multinomial(policy, n, replacement=True, generator=gen)
        idx = []
        for a in arms.tolist():
            free = ((arm_of == a) & ~used).nonzero().squeeze(1)
            if len(free) == 0:
                free = (~used).nonzero().squeeze(1)
            i = int(free[torch.randint(len(free), (1,), generator=gen)])
            used[i] = True
            idx.append(i)
        batch_idx = torch.tensor(idx, dtype=torch.long)
        y = tn.query_targets(view, pool[batch_idx])
        thief.train()
        logp = F.log_softmax(thief(pool[batch_idx]), dim=1)
        loss_each = -(y * logp).sum(1)  # the paper's "loss" reward: what the thief did not yet know
        opt.zero_grad()
        loss_each.mean().backward()
        opt.step()
        for a, r in zip(arms.tolist(), loss_each.detach().tolist(), strict=True):
            t += 1
            baseline += (r - baseline) / t
            grad = -policy
            grad[a] += 1.0
            prefs += 0.1 * (r - baseline) * grad
        chosen.append(batch_idx)
        answers.append(y)
    return torch.cat(chosen), torch.cat(answers)


@register_attack
class Knockoff(Attack):
    """Knockoff Nets (Orekondy, Schiele & Fritz 2019, arXiv:1812.02766).

    The grey-box attacker (Capability ``data-sample``) queries the victim on natural inputs of its
    own, here the training split's inputs without labels, chosen at random or adaptively (a
    gradient bandit rewarded by the thief's loss on the answers), and trains a fresh thief on the
    answers: the probabilities when the API returns them, else the labels. The assessor measures
    the thief's agreement with the victim on held-out data at each checkpoint.
    """

    name = "knockoff"
    goal = Goal.CONFIDENTIALITY
    needs = frozenset({Capability.LABELS, Capability.DATA_SAMPLE})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0024.002"
    owasp = "ML05"
    paper = (
        "Orekondy, Schiele & Fritz 2019, Knockoff Nets: Stealing Functionality of Black-Box Models, arXiv:1812.02766"
    )
    headline = "fidelity"
    worse_when = "higher"
    min_queries = 2
    Config = KnockoffConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: KnockoffConfig = self.config
        pool = tn.attacker_pool(view, data)
        remaining = view.budget.remaining
        total = min(cfg.queries, len(pool), remaining if remaining is not None else cfg.queries)
        if cfg.sampling == "adaptive":
            order, answers = _adaptive_order(view, pool, total, cfg, ctx.seed)
        else:
            gen = torch.Generator().manual_seed(ctx.seed)
            order = torch.randperm(len(pool), generator=gen)[:total]
            answers = tn.query_targets(view, pool[order])
        ends = tn.checkpoints(total, cfg.rounds)
        curve_f: list[float] = []
        accuracy = 0.0
        for r, end in enumerate(ends):
            torch.manual_seed(ctx.seed)
            thief = tn.train_thief(
                tn.make_thief(view.input_shape or pool.shape[1:], view.n_classes),
                pool[order[:end]],
                answers[:end],
                clip=view.clip,
                steps=cfg.steps + 2 * end,
                seed=ctx.seed,
            )
            fid, accuracy = tn.fidelity_and_accuracy(view, thief, data, cfg.n_eval, ctx.seed)
            curve_f.append(fid)
            ctx.step(r + 1, len(ends))
        soft = Capability.PROBABILITIES in view.capabilities
        metrics = {
            "fidelity": curve_f[-1],
            "thief_accuracy": accuracy,
            "queries": int(total),
            "queries_to_90pct_fidelity": tn.first_reaching(ends, curve_f, 0.9),
            "curve_queries": ends,
            "curve_fidelity": curve_f,
            "soft_labels": soft,
        }
        flags = [] if total >= cfg.queries else [f"spent {total} of the {cfg.queries} queries asked (budget or pool)"]
        summary = (
            f"knockoff ({cfg.sampling}): {total} queries ({'probabilities' if soft else 'labels'}) give a copy that "
            f"agrees with the target on {curve_f[-1]:.1%} of held-out inputs"
        )
        arrays = {"queried": order.numpy(), "curve": np.array([ends, curve_f], dtype=np.float64)}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
