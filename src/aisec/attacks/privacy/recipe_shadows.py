"""Shadow models trained by the target's own training process, for targets that are not the recipe's MLP.

LiRA and its kin need shadows that are trained the way the target was (Carlini et al. 2022, arXiv:2112.03570,
Sec. 4: the attacker "trains shadow models on random samples from the data distribution, in the same way as the
target model"). The stacked MLPs of :mod:`aisec.attacks.privacy.shadows` are that only for an MLP target. For a
CNN, a random forest or a logistic regression, the assessment's :class:`~aisec.targets.recipe.Recipe` is: a
scikit-learn target is cloned with its hyperparameters and refitted, a torch target is trained by the user's
trainer function (``target.trainer`` in a spec). :func:`recipe_shadows` trains ``k`` of them, one after another, on
the same complementary halves (:func:`~aisec.attacks.privacy.shadows.shadow_halves`) the stacked shadows would use.

They are not cached: neither a trainer function nor an estimator has a content address that covers what it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from aisec.attacks.privacy.shadows import ShadowSet, shadow_halves
from aisec.targets.base import Target
from aisec.targets.recipe import Recipe

log = logging.getLogger(__name__)


class RecipeShadows:
    """``k`` targets trained by a recipe, answering like a stack of models: ``logits`` are log-probabilities.

    The attacks turn logits back into probabilities with a softmax, which gives each target's own probabilities, so
    a shadow is read exactly as the target is (from what ``predict_proba`` returns).
    """

    def __init__(self, models: list[Target]) -> None:
        self.models = models
        self._views = [m.view("white-box", "probabilities") for m in models]  # the attacker's own: no budget

    @property
    def k(self) -> int:
        return len(self.models)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(K, N, C)`` log-probabilities of every shadow on ``x``."""
        return torch.stack([v.predict_proba(x).float().cpu().clamp_min(1e-38).log() for v in self._views])


def recipe_shadows(
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> ShadowSet:
    """``k`` shadows of ``recipe``, each fitted on a random half of ``(x, y)`` (complementary pairs, seeded);
    ``progress(done, k)`` after each (a user's trainer may take minutes per model)."""
    masks, seeds = shadow_halves(len(y), k, seed)
    start = time.perf_counter()
    models: list[Target] = []
    for m, s in zip(masks, seeds, strict=True):
        models.append(recipe.fit(x[m], y[m], seed=s % (2**31 - 1)))
        if progress is not None:
            progress(len(models), k)
    total = time.perf_counter() - start
    kind = recipe.describe().get("kind", "recipe")
    log.info("%d shadows trained by the target's %s recipe in %.1f s", k, kind, total)
    return ShadowSet(RecipeShadows(models), masks, total / k, False, f"recipe:{kind}", total, total / k,
                     "local", 1, "trainer")  # fmt: skip
