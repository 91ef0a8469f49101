"""Parameters of the Square attack (:class:`~aisec.attacks.integrity.square.Square`), checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.errors import ConfigError


@dataclass(frozen=True, kw_only=True, slots=True)
class SquareConfig:
    """Parameters of :class:`~aisec.attacks.integrity.square.Square`.

    Attributes
    ----------
    eps:
        Radius of the perturbation ball in the chosen norm, in input units.
    norm:
        ``"linf"`` or ``"l2"``.
    queries_per_input:
        Queries each input may use, its clean query included; a limited threat-model budget is
        split evenly over the inputs and lowers this when it does not suffice.
    p_init:
        Initial fraction of the input a square covers; halved on the paper's schedule.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    """

    eps: float = 0.1
    norm: Literal["linf", "l2"] = "linf"
    queries_per_input: int = 1000
    p_init: float = 0.05
    n_samples: int | None = 100

    def __post_init__(self) -> None:
        check_config(self, "square", non_negative=("eps",), integer=("queries_per_input",))
        check_choice("square.norm", self.norm, ("linf", "l2"))
        if self.queries_per_input < 2:
            raise ConfigError(f"square.queries_per_input: expected an integer >= 2, got {self.queries_per_input!r}")
        check_config(self, "square", unit=("p_init",), positive=("p_init",))
        check_config(self, "square", counts=("n_samples",))
