"""The shadow-model membership attack: attack models learn in/out from shadows' answers (Shokri et al. 2017)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from aisec.attacks.base import AttackContext, AttackResult
from aisec.attacks.privacy.metrics import bootstrap_intervals, membership_metrics, resolution_flags
from aisec.attacks.privacy.sample import affordable_split
from aisec.attacks.privacy.shadow_config import (
    ShadowAttackConfig,
    ShadowMembershipAttack,
    attacker_pool,
    build_shadows,
    shadow_evidence,
)
from aisec.attacks.privacy.shadows import ShadowModels, true_class_logit
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

ATTACK_MODELS = ("gbdt", "logistic", "mlp")


@dataclass(frozen=True, kw_only=True, slots=True)
class ShokriConfig(ShadowAttackConfig):
    """Parameters of :class:`ShadowModelAttack`.

    Attributes
    ----------
    shadows:
        Shadow models, each trained on a random half of the attacker's data (complementary
        pairs, so every point is IN for half of them). Shokri et al. use 10-100.
    per_class:
        One attack model per true class (Shokri et al.'s choice); ``False`` trains one attack
        model with the class as a one-hot feature.
    attack_model:
        The in/out classifier: ``"gbdt"`` (histogram gradient boosting, the default),
        ``"logistic"`` or ``"mlp"`` (a small neural network, as in the paper).

    Shared fields (``shadows``, the recipe ``hidden``, ``epochs``, ``lr``, ``batch_size``,
    ``weight_decay``, and ``n_samples``, ``n_bootstrap``, ``cache``, ``batch_size_queries``):
    :class:`~aisec.attacks.privacy.shadow_config.ShadowAttackConfig`.
    """

    per_class: bool = True
    attack_model: Literal["gbdt", "logistic", "mlp"] = "gbdt"

    def __post_init__(self) -> None:
        self.check_shadow_fields("shokri")
        if not isinstance(self.per_class, bool):
            raise ConfigError(f"shokri.per_class: expected true or false, got {self.per_class!r}")
        check_choice("shokri.attack_model", self.attack_model, ATTACK_MODELS)


def attack_features(probs: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Features of one answer: the sorted confidence vector (log scale) and the true class's logit.

    ``probs`` is ``(N, C)``; the result is ``(N, C + 1)``: log of the probabilities in descending
    order (which class they belong to is dropped, as in Salem et al. 2019's variant of Shokri et al.'s
    attack) and phi = log p_y - log(1 - p_y), the confidence in the label the attacker knows.
    """
    p = probs.double()
    ranked = p.sort(dim=1, descending=True).values.clamp_min(1e-30).log()
    phi = true_class_logit(p, y).unsqueeze(1)
    return torch.cat([ranked, phi], dim=1).numpy()


def _classifier(kind: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "gbdt":
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=200, early_stopping=True, random_state=seed))


def fit_attack_models(
    feats: np.ndarray, labels: np.ndarray, classes: np.ndarray, n_classes: int, cfg: ShokriConfig, seed: int
) -> dict[int, Any]:
    """Attack models keyed by class (``-1`` for the single model); a class with one label gets none."""
    groups = range(n_classes) if cfg.per_class else [-1]
    models: dict[int, Any] = {}
    for c in groups:
        sel = classes == c if c >= 0 else np.ones(len(labels), dtype=bool)
        x = feats[sel] if c >= 0 else np.hstack([feats, np.eye(n_classes)[classes]])
        if len(np.unique(labels[sel])) < 2:
            continue
        models[c] = _classifier(cfg.attack_model, seed + max(c, 0)).fit(x, labels[sel])
    return models


def attack_scores(models: dict[int, Any], feats: np.ndarray, classes: np.ndarray, n_classes: int) -> np.ndarray:
    """P(member) for every answer; 0.5 where no attack model could be fitted for its class."""
    out = np.full(len(classes), 0.5)
    if -1 in models:
        return models[-1].predict_proba(np.hstack([feats, np.eye(n_classes)[classes]]))[:, 1]
    for c, model in models.items():
        sel = classes == c
        if sel.any():
            out[sel] = model.predict_proba(feats[sel])[:, 1]
    return out


def _shadow_features(model: ShadowModels, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """``(K, N, C + 1)`` attack features of every shadow's float32 softmax answers."""
    out = []
    with torch.no_grad():
        for s in range(0, len(y), batch):
            p = torch.softmax(model.logits(x[s : s + batch].to(model.device)), dim=-1).cpu()
            out.append(np.stack([attack_features(pk, y[s : s + batch]) for pk in p]))
    return np.concatenate(out, axis=1)


def _answers(view: TargetView, x: torch.Tensor, y: torch.Tensor, batch: int) -> np.ndarray:
    out = [
        attack_features(view.predict_proba(x[s : s + batch]).cpu(), y[s : s + batch]) for s in range(0, len(y), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, view.n_classes + 1))


@register_attack
class ShadowModelAttack(ShadowMembershipAttack):
    """Membership inference with shadow models and attack models (Shokri et al. 2017, arXiv:1610.05820).

    The attacker trains shadow models with the target's recipe on random halves of its data
    sample, so it knows which points each shadow trained on. It labels every shadow's answer
    (its sorted confidence vector and its confidence in the true label) *in* or *out* and trains
    an attack model per class (or one with the class as a feature) to tell them apart; applied to
    the target's answers, its probability of *in* is the membership score.

    Data and evaluation are LiRA's (:mod:`aisec.attacks.privacy.lira`): the attacker's sample is
    the pool of the assessment's train and test splits, without knowing which pool points the
    target trained on; the evaluation set is a balanced sample of members and non-members
    (:meth:`~aisec.data.Dataset.membership_split`); no membership label of the target is used to
    fit anything. Shadows are trained batched and cached like LiRA's, so the two attacks share them.
    """

    name = "shokri"
    paper = "Shokri et al. 2017, Membership Inference Attacks Against Machine Learning Models, arXiv:1610.05820"
    Config = ShokriConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: ShokriConfig = self.config
        pool_x, pool_y = attacker_pool(data)
        split, shrunk = affordable_split(view, data, cfg.n_samples, ctx.seed, attack=self.name)
        (x_in, y_in), (x_out, y_out) = split.members, split.non_members
        n_classes = view.n_classes
        f_target = np.concatenate(
            [_answers(view, x, y, cfg.batch_size_queries) for x, y in ((x_in, y_in), (x_out, y_out))]
        )
        c_target = torch.cat([y_in, y_out]).numpy()
        ctx.step(1, 3)
        shadows, trained, notes = build_shadows(cfg, view, ctx, pool_x, pool_y)
        ctx.step(2, 3)
        feats = _shadow_features(shadows.model, pool_x, pool_y)  # (K, N, C + 1)
        labels = shadows.in_mask.numpy().reshape(-1).astype(int)
        classes = np.tile(pool_y.numpy(), cfg.shadows)
        models = fit_attack_models(feats.reshape(-1, feats.shape[-1]), labels, classes, n_classes, cfg, ctx.seed)
        scores = attack_scores(models, f_target, c_target, n_classes)
        ctx.step(3, 3)
        s_in, s_out = scores[: len(y_in)], scores[len(y_in) :]
        metrics = membership_metrics(s_in, s_out)
        metrics |= bootstrap_intervals(s_in, s_out, n_boot=cfg.n_bootstrap, seed=ctx.seed)
        tpr, fpr = float((s_in > 0.5).mean()), float((s_out > 0.5).mean())
        metrics |= {
            "balanced_accuracy": 0.5 * (tpr + 1.0 - fpr),
            "n_shadows": cfg.shadows,
            **trained,
            "attack_model": cfg.attack_model,
            "per_class": cfg.per_class,
            "attack_models_fitted": len(models),
            "attack_training_rows": len(labels),
            "shadow_key": shadows.key,
            "attacker_pool_size": len(pool_y),
        }
        flags = resolution_flags(metrics) + notes + shrunk
        if cfg.per_class and len(models) < n_classes:
            flags.append(f"{n_classes - len(models)} classes had no in/out answers to learn from: scored 0.5")
        summary = (
            f"shadow-model attack ({cfg.shadows} shadows, {cfg.attack_model} attack model"
            f"{' per class' if cfg.per_class else ''}): TPR {metrics['tpr_at_0.1pct_fpr']:.1%} at 0.1% FPR "
            f"(95% CI {metrics['tpr_at_0.1pct_fpr_ci95'][0]:.1%}-{metrics['tpr_at_0.1pct_fpr_ci95'][1]:.1%}), "
            f"AUC {metrics['auc']:.3f}, balanced accuracy {metrics['balanced_accuracy']:.3f} "
            f"({len(y_in)} members, {len(y_out)} non-members); "
            f"shadows {'from the cache, ' if shadows.from_cache else ''}{shadows.seconds_per_shadow:.2f} s each to train"
        )
        arrays = {
            "scores_members": s_in,
            "scores_non_members": s_out,
            "features_target": f_target,
            **shadow_evidence(shadows),
            **{f"idx_{k}": v for k, v in split.indices.items() if k != "population_test"},
        }
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)
