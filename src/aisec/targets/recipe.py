"""Training recipes: how a target was trained, so that poisoning attacks can train it again.

A poisoning attack changes the training data (flips labels, adds or modifies points) and must
then see what the *same training process* makes of it. A :class:`Recipe` is that process: given
training inputs and labels and a seed, it returns a new :class:`~aisec.targets.base.Target` of
the same kind as the one under test. Two kinds exist:

* :class:`SklearnRecipe` clones a scikit-learn estimator (same hyperparameters, no fitted state)
  and refits it; every sklearn target has one for free (:func:`recipe_for`).
* :class:`TorchRecipe` calls a user's trainer function ``trainer(x, y, seed) -> nn.Module``; in a
  spec it is named as ``target.trainer: "package.module:function"``.

An http or ONNX target has no recipe unless the spec names a trainer: aisec cannot retrain a
model it only reaches over the network, and the plan says so when it skips a poisoning attack.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np
import torch
from torch import nn

from aisec.core.goals import Modality
from aisec.errors import ConfigError, InputValidationError
from aisec.targets.base import Inputs, Target

#: ``trainer(x, y, seed) -> nn.Module``: trains a fresh model on ``x``, ``y`` and returns it (logits out).
TrainerFn: TypeAlias = Callable[[Inputs, torch.Tensor, int], nn.Module]


class Recipe(ABC):
    """The target's training process: new training data in, a freshly trained target out."""

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, x: Inputs, y: torch.Tensor, *, seed: int = 0) -> Target:
        """Train a new model on ``x``, ``y`` (labels ``0..n_classes-1``) and return it as a target."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Plain description for run metadata and findings."""


def _labels(y: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if y.ndim != 1:
        raise InputValidationError("y", "labels of shape (N,)", tuple(y.shape))
    return y


class SklearnRecipe(Recipe):
    """Clone a scikit-learn estimator (hyperparameters, no fitted state) and fit it again.

    Parameters
    ----------
    estimator:
        A fitted or unfitted estimator or pipeline; :func:`sklearn.base.clone` keeps its
        hyperparameters and drops what it learned.
    modality, input_shape, clip:
        Passed to the :class:`~aisec.targets.sklearn.SklearnTarget` each fit returns.
    """

    kind = "sklearn"

    def __init__(
        self,
        estimator: Any,
        *,
        modality: Modality | str | None = None,
        input_shape: Sequence[int] | None = None,
        clip: tuple[float, float] | None = None,
        name: str = "sklearn-model",
    ) -> None:
        if not hasattr(estimator, "fit"):
            raise InputValidationError("estimator", "a scikit-learn estimator with fit()", type(estimator).__name__)
        self.estimator = estimator
        self.modality = modality
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.clip = clip
        self.name = name

    def fit(self, x: Inputs, y: torch.Tensor, *, seed: int = 0) -> Target:
        from sklearn.base import clone

        from aisec.targets.sklearn import SklearnTarget

        est = clone(self.estimator)
        params = est.get_params(deep=True)
        seeds = {k: seed for k in params if k == "random_state" or k.endswith("__random_state")}
        if seeds:
            est.set_params(**seeds)
        xs: Any = x.detach().cpu().reshape(len(x), -1).numpy() if isinstance(x, torch.Tensor) else list(x)
        est.fit(xs, _labels(y).numpy())
        return SklearnTarget(
            est, modality=self.modality, input_shape=self.input_shape, clip=self.clip, name=f"{self.name}-refit"
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "estimator": type(self.estimator).__name__}


class TorchRecipe(Recipe):
    """Train a torch model with the user's trainer function.

    Parameters
    ----------
    trainer:
        ``trainer(x, y, seed) -> nn.Module``; it must build a fresh model each call (a poisoning
        attack trains several) and return it trained, mapping inputs to logits.
    input_shape, n_classes, clip, modality, device:
        Passed to the :class:`~aisec.targets.torch.TorchTarget` each fit returns.
    name:
        Names the recipe in findings (the trainer's qualified name by default).
    """

    kind = "torch"

    def __init__(
        self,
        trainer: TrainerFn,
        *,
        input_shape: Sequence[int],
        n_classes: int,
        clip: tuple[float, float] | None = None,
        modality: Modality | str = Modality.IMAGE,
        device: str | torch.device | None = "cpu",
        name: str | None = None,
    ) -> None:
        if not callable(trainer):
            raise InputValidationError("trainer", "a function (x, y, seed) -> nn.Module", type(trainer).__name__)
        self.trainer = trainer
        self.input_shape = tuple(input_shape)
        self.n_classes = n_classes
        self.clip = clip
        self.modality = modality
        self.device = device
        self.name = name or f"{getattr(trainer, '__module__', '?')}:{getattr(trainer, '__qualname__', 'trainer')}"

    def fit(self, x: Inputs, y: torch.Tensor, *, seed: int = 0) -> Target:
        from aisec.targets.torch import TorchTarget

        model = self.trainer(x, _labels(y), seed)
        if not isinstance(model, nn.Module):
            raise InputValidationError(f"trainer {self.name}", "an nn.Module as its result", type(model).__name__)
        return TorchTarget(
            model,
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            clip=self.clip,
            modality=self.modality,
            device=self.device,
            name=f"{self.name}-retrained",
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "trainer": self.name}


def load_trainer(ref: str, *, base_dir: Path | None = None) -> TrainerFn:
    """Import ``"package.module:function"``; a module beside the spec file (``base_dir``) is found too.

    Importing runs the module's code: name only trainers you would run yourself.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"target.trainer: expected 'package.module:function', got {ref!r}")
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"target.trainer: cannot import {module_name!r}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"target.trainer: {module_name!r} has no function {attr!r}")
    if len(inspect.signature(fn).parameters) < 3:
        raise ConfigError(f"target.trainer: {ref} must take (x, y, seed)")
    return fn  # type: ignore[no-any-return]


def recipe_for(target: Target, trainer: TrainerFn | None = None) -> Recipe | None:
    """The recipe that retrains ``target``: the given trainer, a clone of an sklearn estimator, or ``None``."""
    if trainer is not None:
        if target.input_shape is None:
            raise ConfigError("target.trainer: a trainer function needs a numeric target with an input shape")
        return TorchRecipe(
            trainer,
            input_shape=target.input_shape,
            n_classes=target.n_classes,
            clip=target.clip,
            modality=target.modality,
            device=target.device,
        )
    from aisec.targets.sklearn import SklearnTarget

    if isinstance(target, SklearnTarget):
        return SklearnRecipe(
            target.estimator,
            modality=target.modality,
            input_shape=target.input_shape,
            clip=target.clip,
            name=target.name,
        )
    return None


__all__ = ["Recipe", "SklearnRecipe", "TorchRecipe", "TrainerFn", "load_trainer", "recipe_for"]
