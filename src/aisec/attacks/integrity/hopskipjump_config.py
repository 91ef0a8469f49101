"""Parameters of HopSkipJump (:class:`~aisec.attacks.integrity.hopskipjump.HopSkipJump`), checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice


@dataclass(frozen=True, kw_only=True, slots=True)
class HopSkipJumpConfig:
    """Parameters of :class:`~aisec.attacks.integrity.hopskipjump.HopSkipJump`.

    Attributes
    ----------
    norm:
        ``"l2"`` or ``"linf"``: the distance the search minimises.
    iterations:
        Gradient-estimate / step / binary-search rounds.
    init_evals:
        Probes of the first gradient estimate; round t uses ``init_evals * sqrt(t)``.
    max_evals:
        Most probes of one gradient estimate.
    queries_per_input:
        Cap on the label queries one input may use (20 full iterations take about 6,000);
        ``None`` leaves only the threat model's budget, which is split evenly over the inputs.
    eps:
        L-inf radius (the threat model's ``epsilon``, whatever norm the search minimises) within
        which an adversarial counts: ``robust_accuracy`` is the share of inputs classified right
        with no adversarial found that close. ``None`` counts every adversarial, however far.
    n_samples:
        Test inputs to attack; ``None`` attacks the whole test split.
    """

    norm: Literal["l2", "linf"] = "l2"
    iterations: int = 20
    init_evals: int = 100
    max_evals: int = 1000
    queries_per_input: int | None = 2000
    eps: float | None = 0.1
    n_samples: int | None = 100

    def __post_init__(self) -> None:
        ints = ("iterations", "init_evals", "max_evals")
        check_config(self, "hopskipjump", integer=ints, positive=ints)
        check_choice("hopskipjump.norm", self.norm, ("l2", "linf"))
        check_config(self, "hopskipjump", counts=("queries_per_input",))
        if self.eps is not None:
            check_config(self, "hopskipjump", non_negative=("eps",))
        check_config(self, "hopskipjump", counts=("n_samples",))
