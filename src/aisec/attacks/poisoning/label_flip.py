"""Label flipping: the attacker relabels a share of the training set and the victim retrains on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.poisoning._retrain import accuracy, predict, retrain, train_split
from aisec.attacks.poisoning.common import PoisonedSet, poison_count
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, OutputKind
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import Inputs, TargetView

log = logging.getLogger(__name__)

MODES = ("random", "targeted", "confident")


def flip_labels(
    x: Inputs,
    y: torch.Tensor,
    *,
    fraction: float,
    n_classes: int,
    mode: str = "random",
    source: int | None = None,
    target: int | None = None,
    seed: int = 0,
    proba: torch.Tensor | None = None,
) -> PoisonedSet:
    """Relabel ``round(fraction * N)`` training points.

    Parameters
    ----------
    x, y:
        The training set (inputs are kept as they are).
    fraction:
        Poison budget as a share of the whole training set, in (0, 1).
    n_classes:
        Number of classes; a flipped label is another class in ``0..n_classes-1``.
    mode:
        ``"random"``: uniformly chosen points get a uniformly chosen other class (the classic
        label-noise attack). ``"targeted"``: points of class ``source`` become ``target``; the
        budget is capped by the number of ``source`` points (a warning says so). ``"confident"``:
        the points a clean model classifies most confidently get the class it finds *least*
        likely, a cheap stand-in for the loss-maximising flips of Xiao et al. 2012 (ALFA):
        points far from the boundary, relabelled, pull it the most. Needs ``proba``.
    source, target:
        Classes for ``"targeted"``.
    seed:
        Seeds the choice of points and of new labels.
    proba:
        ``(N, n_classes)`` class probabilities of a clean model on ``x`` (``"confident"`` only).

    Returns
    -------
    PoisonedSet
        Same inputs, flipped labels, the mask of flipped points and the true labels.
    """
    y = torch.as_tensor(y, dtype=torch.long).cpu()
    n = len(y)
    if n_classes < 2:
        raise InputValidationError("n_classes", "at least 2 classes to flip between", n_classes)
    if mode not in MODES:
        raise InputValidationError("mode", " or ".join(repr(m) for m in MODES), mode)
    k = poison_count(n, fraction)
    rng = np.random.default_rng(seed)
    new = y.clone()
    if mode == "random":
        idx = rng.choice(n, size=k, replace=False)
        shift = torch.from_numpy(rng.integers(1, n_classes, size=k))  # never the true class
        new[idx] = (y[idx] + shift) % n_classes
    elif mode == "targeted":
        if source is None or target is None or source == target:
            raise InputValidationError("source/target", "two different classes for a targeted flip", (source, target))
        for name, c in (("source", source), ("target", target)):
            if not 0 <= c < n_classes:
                raise InputValidationError(name, f"a class in 0..{n_classes - 1}", c)
        pool = np.flatnonzero(y.numpy() == source)
        if k > len(pool):
            log.warning("targeted flip: budget of %d points capped at the %d points of class %d", k, len(pool), source)
        idx = rng.choice(pool, size=min(k, len(pool)), replace=False)
        new[idx] = target
    else:
        if proba is None or tuple(proba.shape) != (n, n_classes):
            shape = None if proba is None else tuple(proba.shape)
            raise InputValidationError("proba", f"clean-model probabilities of shape {(n, n_classes)}", shape)
        p = proba.detach().double().cpu()
        own = p.gather(1, y.view(-1, 1)).squeeze(1).numpy()
        idx = np.argsort(-own + 1e-9 * rng.random(n), kind="stable")[:k]  # random tie-break
        others = p[idx].scatter(1, y[idx].view(-1, 1), float("inf"))
        new[idx] = others.argmin(1)
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return PoisonedSet(x=x, y=new, poisoned=mask, clean_y=y)


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelFlipConfig:
    """Parameters of :class:`LabelFlip`.

    Attributes
    ----------
    fraction:
        Share of the training set whose labels are flipped.
    mode:
        ``"random"``, ``"targeted"`` (``source`` -> ``target``) or ``"confident"`` (see :func:`flip_labels`).
    source, target:
        Classes of a targeted flip; ``None`` picks classes 0 -> 1.
    """

    fraction: float = 0.2
    mode: str = "random"
    source: int | None = None
    target: int | None = None

    def __post_init__(self) -> None:
        check_config(self, "label-flip", positive=("fraction",))
        if not self.fraction < 1:
            raise ConfigError(f"label-flip.fraction: expected a number in (0, 1), got {self.fraction!r}")
        check_choice("label-flip.mode", self.mode, MODES)
        for f in ("source", "target"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ConfigError(f"label-flip.{f}: expected a class index >= 0, got {v!r}")
        if self.mode == "targeted" and self.source is not None and self.source == self.target:
            raise ConfigError("label-flip: source and target must differ")


@register_attack
class LabelFlip(Attack):
    """Label-flipping poisoning (Biggio et al. 2012, arXiv:1206.6389; Xiao et al. 2012, ECAI).

    The attacker relabels a share of the training set; the victim retrains with its usual recipe.
    The finding compares the model retrained on the flipped set with the recipe retrained on the
    clean set with the same seed (the baseline): the accuracy drop on the test split is the
    headline, and a targeted flip (class A -> B) also reports the share of class-A test inputs
    now predicted B, against the baseline's share.
    """

    name = "label-flip"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.FLIP_LABELS})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0020"
    owasp = "ML02"
    paper = "Biggio, Nelson & Laskov 2012, Poisoning Attacks against SVMs, arXiv:1206.6389; Xiao et al. 2012"
    headline = "accuracy_drop"
    worse_when = "higher"
    retrains = True
    Config = LabelFlipConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: LabelFlipConfig = self.config
        x, y = train_split(data)
        n_classes = view.n_classes
        source = cfg.source if cfg.source is not None else 0
        dest = cfg.target if cfg.target is not None else (1 if source != 1 else 0)
        if cfg.mode == "targeted" and max(source, dest) >= n_classes:
            raise InputValidationError("source/target", f"classes in 0..{n_classes - 1}", (source, dest))
        total = 2
        clean = retrain(ctx, x, y, done=0, total=total)
        proba = None
        if cfg.mode == "confident":  # the attacker trains the recipe on the data it holds (grey-box)
            proba = clean.view(Knowledge.WHITE_BOX, OutputKind.PROBABILITIES).predict_proba(x).cpu()
        pset = flip_labels(
            x, y, fraction=cfg.fraction, n_classes=n_classes, mode=cfg.mode,
            source=source, target=dest, seed=ctx.seed, proba=proba,
        )  # fmt: skip
        poisoned = retrain(ctx, pset.x, pset.y, done=1, total=total)
        x_test, y_test = data.x_test, data.y_test.cpu()
        base_acc, pois_acc = accuracy(clean, x_test, y_test), accuracy(poisoned, x_test, y_test)
        metrics: dict[str, Any] = {
            "clean_accuracy": base_acc,
            "poisoned_accuracy": pois_acc,
            "accuracy_drop": base_acc - pois_acc,
            "poison_fraction": pset.fraction,
            "n_poison": pset.n_poison,
            "n_train": len(y),
            "n_test": len(y_test),
        }
        flags: list[str] = []
        summary = (
            f"{cfg.mode} label flip of {pset.n_poison} of {len(y)} training labels ({pset.fraction:.1%}): "
            f"test accuracy {pois_acc:.1%} vs {base_acc:.1%} retrained on clean labels"
        )
        if cfg.mode == "targeted":
            requested = poison_count(len(y), cfg.fraction)
            if pset.n_poison < requested:
                flags.append(f"budget capped: {requested} flips asked, class {source} has only {pset.n_poison} points")
            src = y_test == source
            rate = float((predict(poisoned, data.x_test) == dest)[src].float().mean()) if src.any() else 0.0
            base = float((predict(clean, data.x_test) == dest)[src].float().mean()) if src.any() else 0.0
            metrics |= {"source": source, "target": dest, "source_to_target_rate": rate,
                        "baseline_source_to_target_rate": base, "n_source_test": int(src.sum())}  # fmt: skip
            summary += f"; class {source} test inputs predicted {dest}: {rate:.1%} (baseline {base:.1%})"
        arrays = {"poisoned": pset.poisoned, "flipped_labels": pset.y.numpy()}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)


__all__ = ["LabelFlip", "LabelFlipConfig", "flip_labels"]
