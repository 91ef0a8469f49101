"""Parameters of projected gradient descent (:class:`~aisec.attacks.integrity.pgd.PGD`), checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice


@dataclass(frozen=True, kw_only=True, slots=True)
class PGDConfig:
    """Parameters of :class:`~aisec.attacks.integrity.pgd.PGD`.

    Attributes
    ----------
    eps:
        Radius of the perturbation ball, in input units, in the chosen norm.
    norm:
        ``"linf"`` or ``"l2"``.
    steps:
        Gradient steps per restart.
    alpha:
        Step size; ``None`` takes ``2.5 * eps / steps`` (Madry et al.'s rule of thumb).
    random_start:
        Start from a uniform point of the ball instead of the input.
    restarts:
        Independent starts; an input counts as broken when any restart breaks it.
    reinvest:
        Spend the gradient passes that inputs broken early leave unused on fresh random starts for
        the survivors (see :func:`~aisec.attacks.integrity.pgd.pgd_attack`): never more passes than ``steps * restarts`` per input
        on average, never weaker than without. ``False`` runs exactly ``restarts`` starts.
    targeted:
        Push towards a random other class instead of away from the true one.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    batch_size:
        Inputs per batch.
    """

    eps: float = 0.1
    norm: Literal["linf", "l2"] = "linf"
    steps: int = 20
    alpha: float | None = None
    random_start: bool = True
    restarts: int = 1
    reinvest: bool = True
    targeted: bool = False
    n_samples: int | None = 500
    batch_size: int = 256

    def __post_init__(self) -> None:
        ints = ("steps", "restarts", "batch_size")
        check_config(self, "pgd", non_negative=("eps",), integer=ints, positive=ints)
        check_choice("pgd.norm", self.norm, ("linf", "l2"))
        if self.alpha is not None:
            check_config(self, "pgd", positive=("alpha",))
        check_config(self, "pgd", counts=("n_samples",))
