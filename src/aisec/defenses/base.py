"""The defense interface and its registry.

A defense is a class with class-level metadata (name, kind, paper, the attacks it mitigates) and a
frozen keyword-only dataclass config checked in ``__post_init__``. :meth:`Defense.apply` takes the
model under test and the data and returns a :class:`Defended`: a new ``nn.Module`` that maps inputs
to logits. A defense never changes the model it is given.

For preprocessing defenses the returned module is *adaptive by construction*: its forward pass
computes exactly what the deployed defense computes, and its backward pass is the BPDA
(straight-through) or EOT gradient, so every white-box attack run on it is the adaptive attack of
Athalye et al. 2018 (arXiv:1802.00420). :meth:`Defended.naive` returns the same defense with its
true (masked) gradients, for the non-adaptive figure shown beside it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from torch import nn

from aisec.core.configurable import Configurable
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError

ProgressFn = Callable[[int, int], None]
Kind = Literal["training", "input", "ensemble"]


@dataclass(frozen=True, slots=True)
class Defended:
    """A defended model.

    Attributes
    ----------
    model:
        Inputs to logits; the module a defended target serves (adaptive gradients for
        preprocessing defenses).
    naive:
        The same defense with its true gradients (masked by rounding, a median or noise), or
        ``None`` when the defense has no preprocessing step (adversarial training, ensembles).
    serve:
        What answers prediction queries when it differs from ``model`` (a randomized defense
        averages fewer draws than its EOT attacker); ``None`` means ``model``.
    info:
        What the defense did, for reports (e.g. training epochs and loss).
    """

    model: nn.Module
    naive: nn.Module | None = None
    serve: nn.Module | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def deployed(self) -> nn.Module:
        """The module that answers prediction queries."""
        return self.serve if self.serve is not None else self.model


class Defense(Configurable, ABC):
    """One defense technique; see the module docstring."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    paper: ClassVar[str]
    mitigates: ClassVar[frozenset[str]] = frozenset()
    """Registered attack names this defense is meant to weaken."""
    adaptive: ClassVar[str] = "white-box"
    """How the adaptive attack reaches through the defense: ``white-box``, ``bpda`` or ``eot``."""
    Config: ClassVar[type]

    @abstractmethod
    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        """Return the defended model; ``model`` itself is left unchanged."""


_DEFENSES: dict[str, type[Defense]] = {}
D = TypeVar("D", bound="type[Defense]")


def register_defense(cls: D) -> D:
    """Class decorator: add a defense to the registry after checking its metadata."""
    for attr in ("name", "kind", "paper", "Config"):
        if not getattr(cls, attr, None):
            raise ConfigError(f"defense {cls.__name__} lacks {attr}")
    if not dataclasses.is_dataclass(cls.Config):
        raise ConfigError(f"defense {cls.__name__}: Config must be a dataclass")
    existing = _DEFENSES.get(cls.name)
    if existing is not None and existing is not cls:
        raise ConfigError(f"defense name {cls.name!r} is registered twice ({existing.__module__}, {cls.__module__})")
    _DEFENSES[cls.name] = cls
    return cls


def defenses() -> dict[str, type[Defense]]:
    """Every registered defense by name, sorted."""
    import aisec.defenses  # noqa: F401  (registers the built-ins)

    return dict(sorted(_DEFENSES.items()))


def get_defense(name: str) -> type[Defense]:
    """The defense registered under ``name``; :class:`ConfigError` lists the known names otherwise."""
    known = defenses()
    try:
        return known[name]
    except KeyError:
        raise ConfigError(f"unknown defense {name!r}; known defenses: {', '.join(known)}") from None
