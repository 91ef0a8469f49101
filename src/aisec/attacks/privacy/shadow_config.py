"""What every shadow-model membership attack shares (``lira``, ``rmia``, ``shokri``).

The grey-box attacker knows the target's training recipe and trains shadows with it on its data
sample; the attacks then differ only in how they score a point. The config fields, the attacker's
pool, the shadow training (cache, executor) and the evidence of its cost live here once, so the
same recipe gives the same cache key and the three attacks share their cached shadows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, check_config
from aisec.attacks.privacy.recipe import TrainingRecipe, mlp_layers
from aisec.attacks.privacy.recipe_shadows import TRAINERS, own_training, recipe_kind, recipe_shadows
from aisec.attacks.privacy.shadows import ShadowSet, shadow_models
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.targets.base import TargetView


class ShadowMembershipAttack(Attack):
    """What the shadow-model membership attacks (``lira``, ``rmia``, ``shokri``) declare alike: a grey-box
    attacker with probabilities and a data sample (ATLAS AML.T0024.000, OWASP ML04), TPR at 0.1% FPR as
    the headline. Subclasses add their name, paper, config and ``_run``.
    """

    goal: ClassVar[Goal] = Goal.PRIVACY
    needs: ClassVar[frozenset[Capability]] = frozenset({Capability.PROBABILITIES, Capability.DATA_SAMPLE})
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge: ClassVar[Knowledge] = Knowledge.GREY_BOX
    atlas: ClassVar[str] = "AML.T0024.000"
    owasp: ClassVar[str] = "ML04"
    headline: ClassVar[str] = "tpr_at_0.1pct_fpr"
    worse_when: ClassVar[Literal["higher", "lower"]] = "higher"
    min_queries: ClassVar[int] = 100


@dataclass(frozen=True, kw_only=True, slots=True)
class ShadowAttackConfig:
    """Fields of every shadow-model attack's config.

    Attributes
    ----------
    shadows:
        Shadow models (complementary random halves of the attacker's data, so every point is IN
        for half of them). The default 8 keeps an assessment to seconds; the benchmark uses 16.
    hidden, epochs, lr, batch_size, weight_decay:
        The target's training recipe as the grey-box attacker knows it (an MLP on flattened inputs).
    trainer:
        How shadows are trained: ``"mlp"``, the recipe's MLPs, stacked and cached; ``"target"``, the target's
        own training process (an sklearn target cloned and refitted, a torch target by ``target.trainer``),
        on the run's executor and not cached (:mod:`~aisec.attacks.privacy.recipe_shadows`); ``"auto"`` (default),
        the target's own process where the assessment has one, else the MLPs.
    n_samples:
        Members and as many non-members to evaluate on; ``None`` uses all the split allows.
    n_bootstrap:
        Bootstrap resamples for the 95% intervals of AUC and TPR at low FPR.
    cache:
        Reuse shadow models cached under ``$AISEC_CACHE/shadows`` (content-addressed).
    batch_size_queries:
        Inputs per query to the target.
    """

    shadows: int = 8
    hidden: tuple[int, ...] | None = None
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    trainer: Literal["auto", "mlp", "target"] = "auto"
    n_samples: int | None = 500
    n_bootstrap: int = 200
    cache: bool = True
    batch_size_queries: int = 512

    def check_shadow_fields(self, name: str) -> None:
        """The shared ``__post_init__`` checks; ``name`` prefixes the error (``lira.epochs: ...``)."""
        ints = ("shadows", "epochs", "batch_size", "n_bootstrap", "batch_size_queries")
        check_config(self, name, integer=ints, positive=ints, counts=("n_samples",))
        check_config(self, name, positive=("lr",), non_negative=("weight_decay",))
        if self.shadows < 2:
            raise ConfigError(f"{name}.shadows: expected at least 2, got {self.shadows}")
        check_choice(f"{name}.trainer", self.trainer, TRAINERS)
        if self.hidden is not None:
            if isinstance(self.hidden, str) or not isinstance(self.hidden, list | tuple):
                raise ConfigError(f"{name}.hidden: expected a list of layer widths, got {self.hidden!r}")
            object.__setattr__(self, "hidden", tuple(self.hidden))
        self.recipe()  # checks the recipe's fields

    def recipe(self, hidden: tuple[int, ...] | None = None) -> TrainingRecipe:
        """The training recipe the attacker assumes (the same for every shadow attack, so shadows are shared);
        ``hidden`` overrides the configured widths (the target's own, read from a white-box view)."""
        widths = hidden or self.hidden or (64,)
        return TrainingRecipe(
            hidden=widths, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, weight_decay=self.weight_decay
        )


def attacker_pool(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's data sample: the train and test splits together, as in Carlini et al.'s evaluation."""
    if not isinstance(data.x_train, torch.Tensor) or not isinstance(data.x_test, torch.Tensor):
        raise InputValidationError("data", "numeric inputs (tensors)", "text")
    return torch.cat([data.x_train, data.x_test]).float(), torch.cat([data.y_train, data.y_test])


def shadow_recipe(cfg: ShadowAttackConfig, view: TargetView, pool_x: torch.Tensor) -> tuple[TrainingRecipe, list[str]]:
    """The recipe the shadows train with, and what the finding must say about it.

    A white-box view of an MLP-like torch target shows its layer widths: the shadows copy them (a configured
    ``hidden`` that differs is ignored, as in property inference). Otherwise the widths are the configured ones,
    and when none are configured the finding says the shadows assume the defaults: shadows of another model
    than the target measure that model's leakage, usually less (Carlini et al. 2022, Sec. 6).
    """
    read = None
    if Capability.PARAMETERS in view.capabilities:
        layers = mlp_layers(view.parameters, int(pool_x[0].numel()), view.n_classes)
        read = tuple(m.out_features for m in layers[:-1]) if layers else None
    if read is not None:
        ignored = cfg.hidden is not None and tuple(cfg.hidden) != read
        note = f"hidden {list(cfg.hidden or ())} ignored: the shadows copy the target's layer widths {list(read)}"
        return cfg.recipe(read), [note] if ignored else []
    recipe = cfg.recipe()
    if cfg.hidden is not None:
        return recipe, []
    return recipe, [
        f"the shadows assume the default recipe (hidden {list(recipe.hidden)}, {recipe.epochs} epochs, lr "
        f"{recipe.lr:g}, batch {recipe.batch_size}): declare how the target was trained (target.recipe in the spec, "
        "or hidden, epochs, lr, batch_size) or the attack measures another model's leakage"
    ]


def build_shadows(
    cfg: ShadowAttackConfig, view: TargetView, ctx: AttackContext, pool_x: torch.Tensor, pool_y: torch.Tensor
) -> tuple[ShadowSet, dict[str, Any], list[str]]:
    """The attack's shadows (``cfg.trainer``), what its metrics record of how they were trained, and its notes."""
    own = own_training(cfg.trainer, ctx.recipe)
    if own is not None:
        shadows, notes = recipe_shadows(
            own, pool_x, pool_y, cfg.shadows, ctx.seed, progress=ctx.step, executor=ctx.executor
        )
        return shadows, {"shadow_trainer": recipe_kind(own)}, notes
    recipe, notes = shadow_recipe(cfg, view, pool_x)
    shadows = train_shadows(cfg, view, ctx, pool_x, pool_y, recipe)
    return shadows, {"shadow_trainer": "mlp", "shadow_hidden": list(recipe.hidden)}, notes


def train_shadows(
    cfg: ShadowAttackConfig,
    view: TargetView,
    ctx: AttackContext,
    pool_x: torch.Tensor,
    pool_y: torch.Tensor,
    recipe: TrainingRecipe,
) -> ShadowSet:
    """The config's shadows of ``recipe`` (:func:`shadow_recipe`) on the pool: cached, on the run's executor,
    on the target's device."""
    return shadow_models(
        pool_x,
        pool_y,
        view.n_classes,
        recipe,
        cfg.shadows,
        ctx.seed,
        cache=cfg.cache,
        device=view.device,
        executor=ctx.executor,
    )


def shadow_evidence(shadows: ShadowSet) -> dict[str, np.ndarray]:
    """The training cost as evidence arrays: it depends on the run (cache, load), so it stays out of metrics."""
    return {
        "seconds_per_shadow": np.array(shadows.seconds_per_shadow),
        "shadows_from_cache": np.array(shadows.from_cache),
        **{k: np.array(v) for k, v in shadows.cost().items()},
    }


__all__ = ["ShadowAttackConfig", "attacker_pool", "build_shadows", "shadow_evidence", "shadow_recipe", "train_shadows"]
