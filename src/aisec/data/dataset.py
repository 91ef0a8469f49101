"""The dataset an assessment runs on, with its seeded train/test split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aisec.core.goals import Modality
from aisec.errors import InputValidationError

Features = torch.Tensor | list[str]

DIGITS_8X8 = "digits-8x8"
"""``meta["domain"]`` of digits drawn as 8x8 ink images in [0, 1] (scikit-learn's digits, the font digits): a
public set declares the domain it stands in for (:mod:`aisec.defenses.training.dp_public`)."""


def _take(x: Features, idx: np.ndarray) -> Features:
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(idx, dtype=torch.long)]
    return [x[int(i)] for i in idx]


@dataclass(frozen=True, slots=True)
class Dataset:
    """Train and test data of a classifier.

    ``x_train`` is what the target was trained on (the *members*, for privacy attacks); ``x_test``
    was held out (the *non-members*). Numeric inputs are float32 tensors, text inputs lists of
    strings; labels are int64 tensors with values ``0..n_classes-1``.
    """

    name: str
    modality: Modality
    x_train: Features
    y_train: torch.Tensor
    x_test: Features
    y_test: torch.Tensor
    class_names: tuple[str, ...]
    clip: tuple[float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for xs, ys, part in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if len(xs) != len(ys):
                raise InputValidationError(f"x_{part}", f"{len(ys)} rows like y_{part}", f"{len(xs)} rows")
            if ys.dtype != torch.long or ys.ndim != 1:
                raise InputValidationError(
                    f"y_{part}", "an int64 tensor of shape (N,)", f"{ys.dtype} {tuple(ys.shape)}"
                )
            if len(ys) and (int(ys.min()) < 0 or int(ys.max()) >= len(self.class_names)):
                raise InputValidationError(f"y_{part}", f"labels in 0..{len(self.class_names) - 1}", "labels outside")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one numeric input, or ``None`` for text."""
        return tuple(self.x_train.shape[1:]) if isinstance(self.x_train, torch.Tensor) else None

    def describe(self) -> dict[str, Any]:
        """Plain description for run metadata."""
        return {
            "name": self.name,
            "modality": self.modality.value,
            "n_train": len(self.y_train),
            "n_test": len(self.y_test),
            "classes": list(self.class_names),
            "input_shape": list(self.input_shape) if self.input_shape else None,
            **self.meta,
        }

    def test_subset(self, n: int | None, seed: int) -> tuple[Features, torch.Tensor]:
        """At most ``n`` test points, drawn without replacement with ``seed`` (all when ``n`` is None)."""
        if n is None or n >= len(self.y_test):
            return self.x_test, self.y_test
        idx = np.sort(np.random.default_rng(seed).choice(len(self.y_test), size=n, replace=False))
        return _take(self.x_test, idx), self.y_test[torch.as_tensor(idx)]

    def membership_split(self, n: int | None, seed: int) -> MembershipSplit:
        """Members (from train), non-members and a disjoint population sample (both from test).

        Half of the held-out points calibrate the attacker (the *population*: data from the same
        distribution that is known not to be in training); the other half are the evaluation
        non-members. The same number of members is drawn from the training set, so the evaluation
        is balanced. Indices are returned so the run can record them.
        """
        rng = np.random.default_rng(seed)
        test_perm = rng.permutation(len(self.y_test))
        half = len(test_perm) // 2
        pop_idx, non_idx = np.sort(test_perm[:half]), np.sort(test_perm[half:])
        k = len(non_idx) if n is None else min(n, len(non_idx))
        non_idx = np.sort(rng.choice(non_idx, size=k, replace=False))
        mem_idx = np.sort(rng.choice(len(self.y_train), size=min(k, len(self.y_train)), replace=False))
        return MembershipSplit(
            members=(_take(self.x_train, mem_idx), self.y_train[torch.as_tensor(mem_idx)]),
            non_members=(_take(self.x_test, non_idx), self.y_test[torch.as_tensor(non_idx)]),
            population=(_take(self.x_test, pop_idx), self.y_test[torch.as_tensor(pop_idx)]),
            indices={"members_train": mem_idx, "non_members_test": non_idx, "population_test": pop_idx},
        )


@dataclass(frozen=True, slots=True)
class MembershipSplit:
    """Members and non-members to evaluate a membership attack on, and a population to calibrate it."""

    members: tuple[Features, torch.Tensor]
    non_members: tuple[Features, torch.Tensor]
    population: tuple[Features, torch.Tensor]
    indices: dict[str, np.ndarray]


def split_indices(
    n: int, test_size: float, seed: int, stratify: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified train/test indices, the same on every machine for the same arguments."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    train, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)
