"""Shadow models trained by the target's own training process, for targets that are not the recipe's MLP.

LiRA and its kin need shadows that are trained the way the target was (Carlini et al. 2022, arXiv:2112.03570,
Sec. 4: the attacker "trains shadow models on random samples from the data distribution, in the same way as the
target model"). The stacked MLPs of :mod:`aisec.attacks.privacy.shadows` are that only for an MLP target. For a
CNN, a random forest or a logistic regression, the assessment's :class:`~aisec.targets.recipe.Recipe` is: a
scikit-learn target is cloned with its hyperparameters and refitted, a torch target is trained by the user's
trainer function (``target.trainer`` in a spec). :func:`recipe_shadows` trains ``k`` of them on the same
complementary halves (:func:`~aisec.attacks.privacy.shadows.shadow_halves`) the stacked shadows would use, on the
run's executor (``--executor process`` or ``ray``: as many fits at a time as it has workers) or, by default, one
after another in this process.

They are not cached: neither a trainer function nor an estimator has a content address that covers what it does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from aisec.attacks.privacy.shadows import ShadowSet, shadow_halves
from aisec.core.executor import Executor, LocalExecutor
from aisec.errors import UnsupportedTargetError
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


TRAINERS = ("auto", "mlp", "target")
"""A shadow attack's ``trainer``: the recipe's MLPs, the target's own training process, or that where there is one."""


def own_training(trainer: str, recipe: Recipe | None) -> Recipe | None:
    """The target's training process the shadows use under ``trainer`` (:data:`TRAINERS`), or ``None`` for the
    recipe's MLPs; raises :class:`UnsupportedTargetError` for ``"target"`` when the assessment has none."""
    if trainer == "target" and recipe is None:
        raise UnsupportedTargetError(
            "trainer='target' trains shadows with the target's own training process, and this assessment has none: "
            "an sklearn target has one, a torch target needs target.trainer in the spec (AttackContext.recipe)"
        )
    return None if trainer == "mlp" else recipe


def recipe_kind(recipe: Recipe) -> str:
    """The name a finding records for shadows of ``recipe`` (``shadow_trainer``): its ``describe()["kind"]``."""
    return str(recipe.describe().get("kind", "recipe"))


@dataclass(frozen=True, slots=True)
class _Fit:
    """One shadow's training, picklable for an executor: the recipe, its half of the pool and its seed."""

    recipe: Recipe
    x: torch.Tensor
    y: torch.Tensor
    seed: int


def _fit(task: _Fit) -> tuple[Target, float]:
    """Train one shadow; the model and the seconds it took (in the worker)."""
    start = time.perf_counter()
    model = task.recipe.fit(task.x, task.y, seed=task.seed)
    return model, time.perf_counter() - start


def recipe_shadows(
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> tuple[ShadowSet, list[str]]:
    """``k`` shadows of ``recipe``, each fitted on a random half of ``(x, y)`` (complementary pairs, seeded), and
    the finding's notes (:func:`fit_shadows`)."""
    masks, seeds = shadow_halves(len(y), k, seed)
    return fit_shadows(recipe, x, y, masks, seeds, progress=progress, executor=executor)


def fit_shadows(
    recipe: Recipe,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    seeds: list[int],
    *,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
) -> tuple[ShadowSet, list[str]]:
    """Shadow ``i`` of ``recipe`` fitted on the points ``masks[i]`` of ``(x, y)`` with seed ``seeds[i]``.

    ``executor`` runs as many fits at a time as it has workers (default: this process, one after another);
    ``progress(done, k)`` after each wave (a user's trainer may take minutes per model). A recipe the executor
    cannot run (a trainer function its workers cannot import) is trained here instead, and the notes say so.
    """
    k = len(masks)
    tasks = [_Fit(recipe, x[m], y[m], s % (2**31 - 1)) for m, s in zip(masks, seeds, strict=True)]
    ex = executor if executor is not None else LocalExecutor()
    wave = ex.workers
    start = time.perf_counter()
    done: list[tuple[Target, float]] = []
    notes: list[str] = []
    while len(done) < k:
        batch = tasks[len(done) : len(done) + wave]
        try:
            done += ex.map(_fit, batch)
        except Exception as err:  # a worker cannot import or run the trainer: train here, where a real error repeats
            if ex.name == "local":
                raise
            first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
            why = f"{type(err).__name__}: {first}"[:200]
            log.warning("the %s executor could not train the target's shadows (%s); training here", ex.name, why)
            notes.append(f"the {ex.name} executor could not run the target's training ({why}); trained in this process")
            ex, wave = LocalExecutor(), 1
            continue
        if progress is not None:
            progress(len(done), k)
    total = time.perf_counter() - start
    kind = recipe_kind(recipe)
    log.info("%d shadows trained by the target's %s recipe in %.1f s (%s)", k, kind, total, ex.name)
    worker = sum(d[1] for d in done) / k
    shadows = ShadowSet(RecipeShadows([d[0] for d in done]), masks, total / k, False, f"recipe:{kind}", total, worker,
                        ex.name, -(-k // wave), "trainer")  # fmt: skip
    return shadows, notes
