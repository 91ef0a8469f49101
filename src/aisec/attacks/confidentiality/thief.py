"""A data-efficient thief: active, semi-supervised model extraction through the target view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.confidentiality import _thief_nets as tn
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class ThiefConfig:
    """Parameters of :class:`Thief`.

    Attributes
    ----------
    queries:
        Queries to spend (fewer when the budget has less left).
    rounds:
        Query rounds; the thief is retrained and measured after each (the fidelity curve).
    selection:
        ``active``: the first round takes k-means medoids of the pool, later rounds the pool points
        on which the current thief is least sure (smallest margin), spread by k-center; ``random``.
    semi_supervised:
        Also learn from the unlabeled rest of the pool (confident pseudo-labels, consistency).
    steps:
        Optimisation steps per training of the thief, plus two per labeled point.
    threshold:
        Confidence above which a pool point's pseudo-label is used.
    n_eval:
        Held-out inputs on which the assessor measures fidelity (all when None).
    """

    queries: int = 100
    rounds: int = 2
    selection: Literal["active", "random"] = "active"
    semi_supervised: bool = True
    steps: int = 100
    threshold: float = 0.97
    n_eval: int | None = 500

    def __post_init__(self) -> None:
        check_config(self, "thief", integer=("queries", "rounds", "steps"), positive=("queries", "rounds", "steps"))
        check_config(self, "thief", unit=("threshold",))
        check_choice("thief.selection", self.selection, ("active", "random"))
        if not isinstance(self.semi_supervised, bool):
            raise ConfigError(f"thief.semi_supervised: expected true or false, got {self.semi_supervised!r}")
        check_config(self, "thief", counts=("n_eval",))


def _medoids(flat: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """The pool point nearest each of ``k`` k-means centres (a representative first batch)."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(flat.numpy())
    dist = torch.cdist(torch.as_tensor(km.cluster_centers_, dtype=flat.dtype), flat)
    chosen: list[int] = []
    for row in dist:  # distinct medoids
        for i in row.argsort().tolist():
            if i not in chosen:
                chosen.append(i)
                break
    return torch.tensor(chosen, dtype=torch.long)


def select(
    model: nn.Module | None,
    pool: torch.Tensor,
    labeled: torch.Tensor,
    k: int,
    *,
    active: bool,
    gen: torch.Generator,
    seed: int,
) -> torch.Tensor:
    """Indices of ``k`` new pool points to query, not already in ``labeled``."""
    free = torch.ones(len(pool), dtype=torch.bool)
    free[labeled] = False
    candidates = free.nonzero().squeeze(1)
    k = min(k, len(candidates))
    if not active:
        return candidates[torch.randperm(len(candidates), generator=gen)[:k]]
    flat = pool.reshape(len(pool), -1)
    if model is None:
        return candidates[_medoids(flat[candidates], k, seed)]
    probs = tn.predict_proba(model, pool[candidates])
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    margin = top2[:, 0] - top2[:, -1]
    short = candidates[margin.argsort()[: min(len(candidates), 4 * k)]]  # the least certain, then spread out
    return short[tn.kcenter(flat[short], k, None, gen)]


def steal(
    view: TargetView, data: Dataset, cfg: ThiefConfig, seed: int, ctx: AttackContext | None = None
) -> tuple[nn.Module, dict[str, object]]:
    """Run the thief; returns the stolen model and the metrics (fidelity measured by the assessor)."""
    pool = tn.attacker_pool(view, data)
    remaining = view.budget.remaining
    total = min(cfg.queries, len(pool), remaining if remaining is not None else cfg.queries)
    ends = tn.checkpoints(total, cfg.rounds)
    gen = torch.Generator().manual_seed(seed)
    labeled = torch.empty(0, dtype=torch.long)
    targets = torch.empty(0, view.n_classes)
    model: nn.Module | None = None
    curve_q: list[int] = []
    curve_f: list[float] = []
    accuracy = 0.0
    for r, end in enumerate(ends):
        new = select(model, pool, labeled, end - len(labeled), active=cfg.selection == "active", gen=gen, seed=seed)
        targets = torch.cat([targets, tn.query_targets(view, pool[new])])
        labeled = torch.cat([labeled, new])
        rest = torch.ones(len(pool), dtype=torch.bool)
        rest[labeled] = False
        torch.manual_seed(seed)
        model = tn.train_thief(
            tn.make_thief(view.input_shape or pool.shape[1:], view.n_classes),
            pool[labeled],
            targets,
            unlabeled=pool[rest] if cfg.semi_supervised else None,
            clip=view.clip,
            steps=cfg.steps + 2 * len(labeled),
            threshold=cfg.threshold,
            seed=seed,
        )
        fid, accuracy = tn.fidelity_and_accuracy(view, model, data, cfg.n_eval, seed)
        curve_q.append(len(labeled))
        curve_f.append(fid)
        if ctx is not None:
            ctx.step(r + 1, len(ends))
    assert model is not None
    metrics: dict[str, object] = {
        "fidelity": curve_f[-1],
        "thief_accuracy": accuracy,
        "queries": len(labeled),
        "queries_to_90pct_fidelity": tn.first_reaching(curve_q, curve_f, 0.9),
        "curve_queries": curve_q,
        "curve_fidelity": curve_f,
        "soft_labels": Capability.PROBABILITIES in view.capabilities,
        "pool_size": len(pool),
    }
    return model, metrics


@register_attack
class Thief(Attack):
    """A strong, data-efficient thief: active learning plus semi-supervised distillation.

    It uses everything a grey-box attacker has (Capability ``data-sample``): the training split's
    *inputs*, without their labels, as its pool. The first round queries k-means medoids of the
    pool, later rounds the points where the current thief's margin is smallest, spread by k-center
    (Sener & Savarese 2018, arXiv:1708.00489; Pal et al. 2020, ActiveThief, AAAI). The thief learns
    from the victim's probabilities when the API returns them (distillation, Hinton et al. 2015,
    arXiv:1503.02531) or from its labels, and from the unlabeled rest of the pool with confident
    pseudo-labels under augmentation (FixMatch, Sohn et al. 2020, arXiv:2001.07685). The thief is a
    small CNN for images and an MLP otherwise, fresh from a seeded init; its agreement with the
    victim on held-out data is measured by the assessor after every round.
    """

    name = "thief"
    goal = Goal.CONFIDENTIALITY
    needs = frozenset({Capability.LABELS, Capability.DATA_SAMPLE})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0024.002"
    owasp = "ML05"
    paper = "Pal et al. 2020, ActiveThief, AAAI; Sohn et al. 2020, FixMatch, arXiv:2001.07685"
    headline = "fidelity"
    worse_when = "higher"
    min_queries = 2
    Config = ThiefConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: ThiefConfig = self.config
        _model, metrics = steal(view, data, cfg, ctx.seed, ctx)
        flags = []
        if int(metrics["queries"]) < cfg.queries:  # type: ignore[call-overload]
            flags.append(f"spent {metrics['queries']} of the {cfg.queries} queries asked (budget or pool size)")
        kind = "probabilities" if metrics["soft_labels"] else "labels"
        summary = (
            f"thief: {metrics['queries']} queries ({kind}) give a copy that agrees with the target on "
            f"{metrics['fidelity']:.1%} of held-out inputs (its accuracy {metrics['thief_accuracy']:.1%})"
        )
        arrays = {"curve": np.array([metrics["curve_queries"], metrics["curve_fidelity"]], dtype=np.float64)}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
