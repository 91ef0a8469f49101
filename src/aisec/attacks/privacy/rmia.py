"""RMIA: the relative membership inference attack (Zarifzadeh, Liu and Shokri 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.special import expit

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.privacy.lira import _phi
from aisec.attacks.privacy.metrics import bootstrap_intervals, membership_metrics, resolution_flags
from aisec.attacks.privacy.sample import affordable_split
from aisec.attacks.privacy.shadow_config import (
    ShadowAttackConfig,
    ShadowMembershipAttack,
    attacker_pool,
    build_shadows,
    shadow_evidence,
)
from aisec.attacks.privacy.shadows import stacked_phi
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class RMIAConfig(ShadowAttackConfig):
    """Parameters of :class:`RMIA`.

    Attributes
    ----------
    shadows:
        Reference models, the same shadows LiRA trains (complementary random halves of the
        attacker's data; a cached set is shared with LiRA of the same recipe and seed).
    mode:
        ``"online"`` estimates Pr(x) as the mean over all reference models (IN and OUT);
        ``"offline"`` uses the OUT models only, with the linear correction ``a``.
    a:
        Offline only: Pr(x) = ((1 + a) Pr_OUT(x) + 1 - a) / 2, the paper's approximation of the
        IN models' probability from the OUT ones (Zarifzadeh et al. 2024, Sec. 3).
    gamma:
        A point x dominates a population point z when LR(x, z) = (Pr(x|theta)/Pr(x)) /
        (Pr(z|theta)/Pr(z)) > gamma; the score is the fraction of z that x dominates.
    n_population:
        Population points z (known non-members, disjoint from the evaluation set); ``None``
        uses all of the split's population half.

    Shared fields (``shadows``, the recipe ``hidden``, ``epochs``, ``lr``, ``batch_size``,
    ``weight_decay``, and ``n_samples``, ``n_bootstrap``, ``cache``, ``batch_size_queries``):
    :class:`~aisec.attacks.privacy.shadow_config.ShadowAttackConfig`.
    """

    mode: Literal["online", "offline"] = "online"
    a: float = 0.3
    gamma: float = 1.0
    n_population: int | None = None

    def __post_init__(self) -> None:
        self.check_shadow_fields("rmia")
        check_config(self, "rmia", positive=("gamma",), non_negative=("a",), counts=("n_population",))
        check_choice("rmia.mode", self.mode, ("online", "offline"))
        if self.a > 1:
            raise ConfigError(f"rmia.a: expected a value in [0, 1], got {self.a}")


def marginal_probability(p_ref: np.ndarray, in_mask: np.ndarray, *, online: bool, a: float) -> np.ndarray:
    """Pr(x): the reference models' mean probability of the true label, ``p_ref`` (K, N).

    Online: the mean over all models. Offline: the mean over the OUT models, ``p_out``, mapped
    to ((1 + a) p_out + 1 - a) / 2 (a point with no OUT model gets the mean of all models).
    """
    if online:
        return p_ref.mean(0)
    out = ~in_mask
    count = out.sum(0)
    p_out = np.where(count > 0, np.where(out, p_ref, 0.0).sum(0) / np.maximum(count, 1), p_ref.mean(0))
    return 0.5 * ((1.0 + a) * p_out + 1.0 - a)


def rmia_scores(
    p_target: np.ndarray,
    p_ref: np.ndarray,
    in_mask: np.ndarray,
    p_target_z: np.ndarray,
    p_ref_z: np.ndarray,
    in_mask_z: np.ndarray,
    *,
    online: bool,
    a: float = 0.3,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA scores (higher means member) of candidates x against population points z.

    ``p_target`` (N,) and ``p_target_z`` (M,) are the target's probabilities of the true label;
    ``p_ref`` (K, N), ``p_ref_z`` (K, M) the reference models'. The score of x is the fraction
    of z with LR(x, z) > ``gamma``; points that dominate the same fraction (all of Z, say) are
    ordered by their own ratio Pr(x|theta)/Pr(x), a tie-break smaller than one step of 1/M.
    """
    eps = 1e-30
    log_x = np.log(np.maximum(p_target, eps)) - np.log(
        np.maximum(marginal_probability(p_ref, in_mask, online=online, a=a), eps)
    )
    log_z = np.log(np.maximum(p_target_z, eps)) - np.log(
        np.maximum(marginal_probability(p_ref_z, in_mask_z, online=online, a=a), eps)
    )
    # LR(x, z) > gamma  <=>  log_x - log gamma > log_z: count with a sorted Z
    frac = np.searchsorted(np.sort(log_z), log_x - np.log(gamma), side="left") / max(len(log_z), 1)
    tie = (0.5 + np.arctan(log_x) / np.pi) / (2.0 * max(len(log_z), 1))
    return frac + tie


def _true_prob(phi: np.ndarray) -> np.ndarray:
    """Probability of the true label from LiRA's statistic phi = log p - log(1 - p)."""
    return expit(phi)


@register_attack
class RMIA(ShadowMembershipAttack):
    """Relative membership inference, RMIA (Zarifzadeh, Liu and Shokri 2024, arXiv:2312.03262).

    The likelihood ratio of a candidate x, Pr(x|theta) / Pr(x), is the target's probability of
    the true label over its mean under reference models (the marginal over training sets). RMIA
    compares it with that of population points z known not to be members: x dominates z when
    the ratio of the two ratios exceeds ``gamma``; the score is the fraction of z dominated.
    Online, Pr(x) averages all reference models (each trained on a random half of the pool, so
    half of them trained on x); offline, only the OUT models with the paper's linear correction.

    Threat model and protocol are LiRA's (:class:`~aisec.attacks.privacy.lira.LiRA`): grey-box
    (the recipe and a data sample: all of the assessment's data as the pool, without membership
    labels), the same cached shadows as reference models, the same balanced evaluation set. The
    population z is the held-out half that :meth:`~aisec.data.Dataset.membership_split` keeps
    apart from the evaluation non-members.
    """

    name = "rmia"
    paper = "Zarifzadeh, Liu and Shokri 2024, Low-Cost High-Power Membership Inference Attacks, arXiv:2312.03262"
    Config = RMIAConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: RMIAConfig = self.config
        pool_x, pool_y = attacker_pool(data)
        split, shrunk = affordable_split(
            view, data, cfg.n_samples, ctx.seed, attack=self.name, population=cfg.n_population
        )
        (x_in, y_in), (x_out, y_out) = split.members, split.non_members
        pop = split.indices["population_test"]
        if cfg.n_population is not None and cfg.n_population < len(pop):
            pop = np.sort(np.random.default_rng(ctx.seed).choice(pop, size=cfg.n_population, replace=False))
        if len(pop) == 0:
            raise InputValidationError("data", "held-out points for a population sample", "none")
        n_tr = len(data.y_train)
        cand = np.concatenate([split.indices["members_train"], n_tr + split.indices["non_members_test"]])
        z_idx = torch.as_tensor(n_tr + pop, dtype=torch.long)
        total = len(cand) + len(pop) + 1
        q = cfg.batch_size_queries
        phi_t = np.concatenate([_phi(view, x, y, q) for x, y in ((x_in, y_in), (x_out, y_out))])
        phi_tz = _phi(view, pool_x[z_idx], pool_y[z_idx], q)
        ctx.step(1, total)
        shadows, trained, notes = build_shadows(cfg, view, ctx, pool_x, pool_y)
        cand_t = torch.as_tensor(cand, dtype=torch.long)
        p_ref = _true_prob(stacked_phi(shadows.model, pool_x[cand_t], pool_y[cand_t]))
        p_ref_z = _true_prob(stacked_phi(shadows.model, pool_x[z_idx], pool_y[z_idx]))
        in_mask, in_mask_z = shadows.in_mask[:, cand_t].numpy(), shadows.in_mask[:, z_idx].numpy()
        scores = rmia_scores(
            _true_prob(phi_t),
            p_ref,
            in_mask,
            _true_prob(phi_tz),
            p_ref_z,
            in_mask_z,
            online=cfg.mode == "online",
            a=cfg.a,
            gamma=cfg.gamma,
        )
        ctx.step(total, total)
        s_in, s_out = scores[: len(y_in)], scores[len(y_in) :]
        metrics = membership_metrics(s_in, s_out)
        metrics |= bootstrap_intervals(s_in, s_out, n_boot=cfg.n_bootstrap, seed=ctx.seed)
        tpr, fpr = float((s_in > 0.5).mean()), float((s_out > 0.5).mean())  # dominates more than half of Z
        metrics |= {
            "balanced_accuracy": 0.5 * (tpr + 1.0 - fpr),
            "mode": cfg.mode,
            "n_shadows": cfg.shadows,
            **trained,
            "n_population": len(pop),
            "shadow_key": shadows.key,
            "attacker_pool_size": len(pool_y),
        }
        flags = resolution_flags(metrics) + notes + shrunk
        summary = (
            f"RMIA ({cfg.mode}, {cfg.shadows} reference models, {len(pop)} population points): "
            f"TPR {metrics['tpr_at_0.1pct_fpr']:.1%} at 0.1% FPR "
            f"(95% CI {metrics['tpr_at_0.1pct_fpr_ci95'][0]:.1%}-{metrics['tpr_at_0.1pct_fpr_ci95'][1]:.1%}), "
            f"AUC {metrics['auc']:.3f} ({len(y_in)} members, {len(y_out)} non-members); "
            f"{shadows.precision} reference models {'from the cache' if shadows.from_cache else 'trained'}, "
            f"{shadows.seconds_per_shadow:.2f} s each to train"
        )
        arrays = {
            "scores_members": s_in,
            "scores_non_members": s_out,
            "phi_target": phi_t,
            "phi_target_population": phi_tz,
            "idx_population_test": pop,
            "shadow_in_mask": in_mask,
            **shadow_evidence(shadows),
            **{f"idx_{k}": v for k, v in split.indices.items() if k != "population_test"},
        }
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
