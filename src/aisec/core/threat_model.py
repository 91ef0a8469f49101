"""The threat model: what the attacker knows, what it can do, and what the owner must protect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aisec.core.goals import (
    TRAINING_DATA_CAPABILITIES,
    Capability,
    Goal,
    Knowledge,
    OutputKind,
    ProtectionNeed,
)
from aisec.errors import ConfigError


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreatModel:
    """An attacker and the protection needs of the application it attacks.

    Attributes
    ----------
    knowledge:
        What the attacker knows: white-box, grey-box or black-box.
    output:
        What the prediction API returns: probabilities, top-k or labels.
    top_k:
        How many classes a top-k API returns.
    query_budget:
        Queries the attacker may send per attack; ``None`` is unlimited.
    training_data:
        What the attacker can do to the training data (add, delete, modify points, flip labels).
    manipulate_training:
        Whether the attacker can change the training process itself.
    needs:
        Protection need per security goal. A goal that is absent is not assessed.
    epsilon:
        Perturbation budget (L-inf, in input units) that evasion attacks use when their config
        leaves it unset; ``None`` lets each attack use its own default.
    """

    knowledge: Knowledge = Knowledge.BLACK_BOX
    output: OutputKind = OutputKind.PROBABILITIES
    top_k: int = 1
    query_budget: int | None = 10_000
    training_data: frozenset[Capability] = field(default_factory=frozenset)
    manipulate_training: bool = False
    needs: Mapping[Goal, ProtectionNeed] = field(default_factory=dict)
    epsilon: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "knowledge", Knowledge.parse(self.knowledge, field="knowledge"))
        object.__setattr__(self, "output", OutputKind.parse(self.output, field="output"))
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ConfigError(f"top_k: expected an integer >= 1, got {self.top_k!r}")
        if self.query_budget is not None and (
            isinstance(self.query_budget, bool) or not isinstance(self.query_budget, int) or self.query_budget < 0
        ):
            raise ConfigError(f"query_budget: expected a non-negative integer or null, got {self.query_budget!r}")
        allowed = ", ".join(sorted(c.value for c in TRAINING_DATA_CAPABILITIES))
        given = (self.training_data,) if isinstance(self.training_data, str) else tuple(self.training_data)
        caps = set()
        for c in given:
            try:
                cap = Capability.parse(c, field="training_data")
            except ConfigError:
                cap = None
            if cap not in TRAINING_DATA_CAPABILITIES:
                raise ConfigError(f"training_data: {c!r} is not allowed; allowed: {allowed}")
            caps.add(cap)
        object.__setattr__(self, "training_data", frozenset(caps))
        needs = {
            Goal.parse(g, field="needs"): ProtectionNeed.parse(n, field=f"needs.{g}")
            for g, n in dict(self.needs).items()
        }
        object.__setattr__(self, "needs", needs)
        if self.epsilon is not None and (
            isinstance(self.epsilon, bool) or not isinstance(self.epsilon, int | float) or not self.epsilon >= 0
        ):
            raise ConfigError(f"epsilon: expected a number >= 0, got {self.epsilon!r}")

    def grants(self) -> frozenset[Capability]:
        """The capabilities this attacker has, before asking what a given target can provide."""
        granted = {Capability.LABELS}
        if self.knowledge is Knowledge.WHITE_BOX:
            granted |= {
                Capability.PROBABILITIES,
                Capability.GRADIENTS,
                Capability.PARAMETERS,
                Capability.TRAINING_DATA,
                Capability.DATA_SAMPLE,
            }
        else:
            if self.output is not OutputKind.LABELS:
                granted.add(Capability.PROBABILITIES)
            if self.knowledge is Knowledge.GREY_BOX:
                granted.add(Capability.DATA_SAMPLE)
        granted |= self.training_data
        if self.manipulate_training:
            granted.add(Capability.MANIPULATE_TRAINING)
        return frozenset(granted)

    def missing(self, needs: Iterable[Capability]) -> frozenset[Capability]:
        """The capabilities in ``needs`` that this threat model does not grant."""
        return frozenset(needs) - self.grants()

    @property
    def goals(self) -> tuple[Goal, ...]:
        """The goals with a declared protection need, in the canonical order."""
        return tuple(g for g in Goal if g in self.needs)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form (as written in a spec's ``threat_model`` section)."""
        return {
            "knowledge": self.knowledge.value,
            "output": self.output.value,
            "top_k": self.top_k,
            "query_budget": self.query_budget,
            "training_data": sorted(c.value for c in self.training_data),
            "manipulate_training": self.manipulate_training,
            "needs": {g.value: n.value for g, n in self.needs.items()},
            "epsilon": self.epsilon,
        }
