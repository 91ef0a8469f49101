"""The vocabulary of aisec: security goals, attacker knowledge, capabilities, protection needs.

The words follow the project's design (DESIGN.md): an AI application has four security goals;
an attacker is described by what it knows (knowledge) and what it can do (capabilities); the
owner declares a protection need per goal.
"""

from __future__ import annotations

from enum import StrEnum

from aisec.errors import ConfigError


class _Choice(StrEnum):
    """A string enum whose ``parse`` names the allowed values when it fails."""

    @classmethod
    def parse(cls, value: object, *, field: str | None = None) -> _Choice:
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower().replace("_", "-")
        for member in cls:
            if member.value == text:
                return member
        allowed = ", ".join(m.value for m in cls)
        name = field or cls.__name__.lower()
        raise ConfigError(f"{name}: {value!r} is not allowed; allowed: {allowed}")


class Goal(_Choice):
    """A security goal of an AI application."""

    INTEGRITY = "integrity"
    """Right predictions, even on crafted inputs or after poisoned training data."""
    AVAILABILITY = "availability"
    """Harmless inputs pass; the service serves."""
    CONFIDENTIALITY = "confidentiality"
    """The model, its parameters and what it keeps secret stay hidden."""
    PRIVACY = "privacy"
    """Nothing about the people in the training data can be concluded from the model."""


class Knowledge(_Choice):
    """What the attacker knows about the target."""

    WHITE_BOX = "white-box"
    """Training data, algorithm and parameters: perfect knowledge."""
    GREY_BOX = "grey-box"
    """Some of them, e.g. the architecture and training recipe, or a sample of the data."""
    BLACK_BOX = "black-box"
    """Query access only."""

    @property
    def rank(self) -> int:
        """0 for black-box, 1 for grey-box, 2 for white-box: more knowledge, higher rank."""
        return {"black-box": 0, "grey-box": 1, "white-box": 2}[self.value]


class OutputKind(_Choice):
    """What the prediction API returns for a query."""

    PROBABILITIES = "probabilities"
    """A probability (or score) per class."""
    TOP_K = "top-k"
    """The k most likely classes with their probabilities; the others read as 0."""
    LABELS = "labels"
    """The predicted label only."""


class ProtectionNeed(_Choice):
    """How much a goal must be protected; sets which tests run and how strict the thresholds are."""

    NORMAL = "normal"
    HIGH = "high"
    VERY_HIGH = "very-high"


class Modality(_Choice):
    """The kind of input a target takes."""

    IMAGE = "image"
    TABULAR = "tabular"
    TEXT = "text"


class Capability(_Choice):
    """Something an attack needs from the target, the data or the training pipeline.

    The first group is access to the model, granted by the threat model's knowledge and output
    kind and limited by what the target adapter can provide. The second group is what the attacker
    can do to the training data or the training process.
    """

    # access to the model
    LABELS = "labels"
    """Predicted labels for chosen inputs (every threat model grants this)."""
    PROBABILITIES = "probabilities"
    """Class probabilities (or scores) for chosen inputs."""
    GRADIENTS = "gradients"
    """Gradients of the model's output with respect to its input (white-box only)."""
    PARAMETERS = "parameters"
    """The model's parameters (white-box only)."""
    TRAINING_DATA = "training-data"
    """The training data itself (white-box only)."""
    DATA_SAMPLE = "data-sample"
    """A sample from the training distribution that is not the training data (grey-box or more)."""
    # on the training data and process
    ADD_POINTS = "add-points"
    ADD_UNLABELED_POINTS = "add-unlabeled-points"
    DELETE_POINTS = "delete-points"
    MODIFY_POINTS = "modify-points"
    FLIP_LABELS = "flip-labels"
    MANIPULATE_TRAINING = "manipulate-training"


#: Capabilities on the training data that a spec may list under ``threat_model.training_data``.
TRAINING_DATA_CAPABILITIES: frozenset[Capability] = frozenset(
    {
        Capability.ADD_POINTS,
        Capability.ADD_UNLABELED_POINTS,
        Capability.DELETE_POINTS,
        Capability.MODIFY_POINTS,
        Capability.FLIP_LABELS,
    }
)

#: Capabilities that are read access to the model.
MODEL_ACCESS_CAPABILITIES: frozenset[Capability] = frozenset(
    {
        Capability.LABELS,
        Capability.PROBABILITIES,
        Capability.GRADIENTS,
        Capability.PARAMETERS,
    }
)

__all__ = [
    "MODEL_ACCESS_CAPABILITIES",
    "TRAINING_DATA_CAPABILITIES",
    "Capability",
    "Goal",
    "Knowledge",
    "Modality",
    "OutputKind",
    "ProtectionNeed",
]
