"""The parameters of :class:`aisec.attacks.privacy.property_inference.PropertyInference`, checked when made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aisec.attacks.base import check_config
from aisec.attacks.privacy.recipe import TrainingRecipe
from aisec.attacks.privacy.recipe_shadows import TRAINERS
from aisec.core.configurable import check_choice
from aisec.errors import ConfigError

PROPERTIES = ("class-share", "feature-threshold")
REPRESENTATIONS = ("auto", "white-box", "black-box")


@dataclass(frozen=True, kw_only=True, slots=True)
class PropertyInferenceConfig:
    """Parameters of :class:`PropertyInference`.

    Attributes
    ----------
    property:
        ``"class-share"``: the share of training points of class ``property_class``;
        ``"feature-threshold"``: the share of points whose (flattened) feature ``feature`` exceeds
        ``threshold``.
    property_class:
        The class whose share is inferred (breast cancer: 0 = malignant; digits: the digit).
    feature, threshold:
        The feature index and its threshold (``None``: the median over the attacker's data).
    proportions:
        The shares the attacker tells apart (two or more, each in (0, 1)); ``None``: 0.3 and 0.7.
    shadows:
        Shadow models in all, split evenly over the proportions; cheap ones, trained at once.
    shadow_size:
        Training points per shadow; ``None``: the size of the assessment's train split, capped
        where the attacker's data has too few points with (or without) the property.
    representation:
        How the meta-classifier sees a model: ``"white-box"``: a permutation-invariant summary of
        the first layer's neurons (needs parameters and an MLP target); ``"black-box"``: the
        model's probabilities on a fixed query set; ``"auto"``: white-box when it can, else
        black-box (the finding says why).
    n_queries:
        Size of the black-box query set (drawn from the attacker's data), one query each.
    folds:
        Cross-validation folds over the shadows: every shadow is judged by a meta-classifier that
        never saw it.
    hidden, epochs, lr, batch_size, weight_decay:
        The target's training recipe as the attacker knows it (white-box: the hidden widths are
        read from the target).
    trainer:
        How the shadows are trained: ``"mlp"``, the recipe's MLPs, stacked; ``"target"``, the target's own
        training process (an sklearn target cloned and refitted, a torch target by ``target.trainer``), on the
        run's executor, read through the black-box representation; ``"auto"`` (default): the target's own
        where the assessment has one and the representation is black-box, else the MLPs.
    """

    property: Literal["class-share", "feature-threshold"] = "class-share"
    property_class: int = 0
    feature: int = 0
    threshold: float | None = None
    proportions: tuple[float, ...] | None = None
    shadows: int = 64
    shadow_size: int | None = None
    representation: Literal["auto", "white-box", "black-box"] = "auto"
    n_queries: int = 64
    folds: int = 4
    hidden: tuple[int, ...] | None = None
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    trainer: Literal["auto", "mlp", "target"] = "auto"

    def __post_init__(self) -> None:
        name = "property-inference"
        ints = ("shadows", "n_queries", "folds", "epochs", "batch_size")
        check_config(self, name, integer=(*ints, "property_class", "feature"), positive=(*ints, "lr"))
        check_config(self, name, non_negative=("property_class", "feature", "weight_decay"))
        check_choice(f"{name}.property", self.property, PROPERTIES)
        check_choice(f"{name}.representation", self.representation, REPRESENTATIONS)
        check_choice(f"{name}.trainer", self.trainer, TRAINERS)
        if self.trainer == "target" and self.representation == "white-box":
            raise ConfigError(
                f"{name}.trainer: 'target' shadows are read by their outputs; representation 'white-box' needs "
                "the recipe's MLPs (trainer 'mlp' or 'auto')"
            )
        if self.threshold is not None and (
            isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float)
        ):
            raise ConfigError(f"{name}.threshold: expected a number or null, got {self.threshold!r}")
        props = self.shares()
        if isinstance(props, str) or not isinstance(props, list | tuple) or len(props) < 2:
            raise ConfigError(f"{name}.proportions: expected two or more shares, got {props!r}")
        if any(isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1 for p in props):
            raise ConfigError(f"{name}.proportions: expected shares in (0, 1), got {props!r}")
        if len(set(props)) != len(props):
            raise ConfigError(f"{name}.proportions: expected distinct shares, got {props!r}")
        if self.proportions is not None:
            object.__setattr__(self, "proportions", tuple(float(p) for p in props))
        if self.folds < 2 or self.shadows < 2 * self.folds * len(props):
            raise ConfigError(
                f"{name}.shadows: expected at least 2 x folds x proportions = {2 * self.folds * len(props)} "
                f"(folds >= 2), got shadows={self.shadows}, folds={self.folds}"
            )
        ss = self.shadow_size
        if ss is not None and (isinstance(ss, bool) or not isinstance(ss, int) or ss < 2):
            raise ConfigError(f"{name}.shadow_size: expected an integer >= 2 or null, got {ss!r}")
        if self.hidden is not None:
            if isinstance(self.hidden, str) or not isinstance(self.hidden, list | tuple):
                raise ConfigError(f"{name}.hidden: expected a list of layer widths, got {self.hidden!r}")
            object.__setattr__(self, "hidden", tuple(self.hidden))
        self.recipe()

    def shares(self) -> tuple[float, ...]:
        """The proportions, with the default filled in."""
        return (0.3, 0.7) if self.proportions is None else self.proportions

    def recipe(self, hidden: tuple[int, ...] | None = None) -> TrainingRecipe:
        """The training recipe the attacker assumes (``hidden`` overrides the configured widths)."""
        widths = hidden or self.hidden or (64,)
        return TrainingRecipe(
            hidden=widths, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, weight_decay=self.weight_decay
        )
