"""The attack interface: class-level metadata, a frozen config, and ``run(view, data) -> Finding``."""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import torch

from aisec.core.configurable import Configurable
from aisec.core.executor import Executor
from aisec.core.findings import Finding
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.core.threat_model import ThreatModel
from aisec.data.dataset import Dataset
from aisec.errors import BudgetExceededError, ConfigError, InputValidationError, UnsupportedTargetError
from aisec.targets.base import TargetView
from aisec.targets.recipe import Recipe

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class AttackContext:
    """What the runner gives an attack besides the view and the data.

    Attributes
    ----------
    seed:
        Seed for every random choice of the attack.
    run_dir:
        The run folder; evidence paths in the finding are relative to it.
    job_id:
        The plan job this run belongs to; names its evidence files.
    progress:
        Called as ``progress(done, total)`` while the attack works.
    threat_model:
        The threat model the view was made for.
    recipe:
        The target's training recipe, for attacks that retrain it (poisoning); ``None`` when
        aisec cannot retrain the target.
    executor:
        Where independent work such as shadow-model training runs (:mod:`aisec.core.executor`);
        ``None`` runs it in this process.
    """

    seed: int = 0
    run_dir: Path | None = None
    job_id: str = ""
    progress: ProgressFn | None = None
    threat_model: ThreatModel | None = None
    recipe: Recipe | None = None
    executor: Executor | None = None

    def step(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


@dataclass(kw_only=True, slots=True)
class AttackResult:
    """What an attack's ``_run`` returns; :meth:`Attack.run` turns it into a :class:`Finding`."""

    metrics: dict[str, Any]
    summary: str
    flags: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def check_config(
    config: Any,
    name: str,
    *,
    positive: tuple[str, ...] = (),
    unit: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    integer: tuple[str, ...] = (),
    counts: tuple[str, ...] = (),
) -> None:
    """Common ``__post_init__`` checks; raises :class:`ConfigError` naming the field and the rule.

    ``counts`` are optional counts: ``None`` (use all, or a default) or an integer > 0.
    """
    for f in counts:
        v = getattr(config, f)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{name}.{f}: expected an integer > 0 or null, got {v!r}")
    for f in integer:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{name}.{f}: expected an integer, got {v!r}")
    for f in positive:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or not math.isfinite(v):
            raise ConfigError(f"{name}.{f}: expected a number > 0, got {v!r}")
    for f in non_negative:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0 or not math.isfinite(v):
            raise ConfigError(f"{name}.{f}: expected a number >= 0, got {v!r}")
    for f in unit:
        v = getattr(config, f)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name}.{f}: expected a number in [0, 1], got {v!r}")


class Attack(Configurable, ABC):
    """One attack technique.

    Subclasses set the class metadata below and implement :meth:`_run`. :meth:`run` checks that
    the view grants what the attack needs and that the data fits, seeds torch and NumPy, times
    the run, saves evidence arrays and builds the :class:`Finding`.
    """

    name: ClassVar[str]
    goal: ClassVar[Goal]
    needs: ClassVar[frozenset[Capability]]
    modalities: ClassVar[frozenset[Modality]] = frozenset(Modality)
    knowledge: ClassVar[Knowledge]
    """The least knowledge the attack works with (for tables and docs)."""
    atlas: ClassVar[str]
    owasp: ClassVar[str]
    paper: ClassVar[str]
    headline: ClassVar[str]
    """Name of the metric that summarises the attack's finding."""
    worse_when: ClassVar[Literal["higher", "lower"]]
    """Whether a higher or a lower headline value means a weaker model."""
    retrains: ClassVar[bool] = False
    """Whether the attack retrains the target with its recipe (poisoning); needs ``ctx.recipe``."""
    nondeterministic_metrics: ClassVar[frozenset[str]] = frozenset()
    """Metrics measured in wall-clock time, which a seed does not reproduce (latencies)."""
    min_queries: ClassVar[int] = 0
    """Fewest queries the attack needs to say anything (the default of :meth:`queries_needed`)."""
    Config: ClassVar[type]

    def queries_needed(self, input_shape: tuple[int, ...] | None) -> int:
        """Fewest queries this attack, as configured, needs against a target taking inputs of this shape."""
        return self.min_queries

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        return cls(cls.config_from(params))

    # -- running ---------------------------------------------------------------------------------
    def check(self, view: TargetView, data: Dataset) -> None:
        """Raise if the view or the data cannot serve this attack."""
        if view.modality is not data.modality:  # data that does not fit the target is wrong for any attack
            raise InputValidationError("data", f"{view.modality.value} data like the target", data.modality.value)
        if data.modality not in self.modalities:
            allowed = ", ".join(sorted(m.value for m in self.modalities))
            raise UnsupportedTargetError(f"{self.name} works on {allowed} inputs, not {data.modality.value}")
        if data.n_classes > view.n_classes:
            raise InputValidationError(
                "data", f"labels of at most {view.n_classes} classes like the target", f"{data.n_classes} classes"
            )
        view.require(*sorted(self.needs & _VIEW_CAPS))
        for xs, part in ((data.x_test, "data.x_test"), (data.x_train, "data.x_train")):
            if isinstance(xs, torch.Tensor) and len(xs):
                view.validate(xs[:1], argument=part)  # the shape and range the target takes; no query
        needed = self.queries_needed(view.input_shape)
        if not view.budget.can_afford(needed):
            raise BudgetExceededError(view.budget.limit or 0, view.budget.used, needed)

    def run(self, view: TargetView, data: Dataset, context: AttackContext | None = None) -> Finding:
        """Run the attack through ``view`` on ``data`` and return what it measured."""
        ctx = context or AttackContext()
        self.check(view, data)
        if self.retrains and ctx.recipe is None:
            raise UnsupportedTargetError(
                f"{self.name} retrains the target and needs its training recipe: an sklearn target, "
                "or a torch trainer function (target.trainer in a spec, AttackContext.recipe in Python)"
            )
        torch.manual_seed(ctx.seed)
        queries_before, checks_before = view.queries, view.check_queries
        start = time.perf_counter()
        result = self._run(view, data, ctx)
        seconds = time.perf_counter() - start
        evidence: dict[str, str] = {}
        if result.arrays and ctx.run_dir is not None:
            rel = Path("evidence") / f"{ctx.job_id or self.name}.npz"
            (ctx.run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(ctx.run_dir / rel, **result.arrays)
            evidence["arrays"] = rel.as_posix()
        return Finding(
            job_id=ctx.job_id or self.name,
            attack=self.name,
            goal=self.goal,
            knowledge=view.knowledge,
            output=view.output,
            config=self.params(),
            metrics=result.metrics,
            headline=self.headline,
            worse_when=self.worse_when,
            summary=result.summary,
            flags=result.flags,
            evidence=evidence,
            seconds=round(seconds, 4),
            queries=view.queries - queries_before,
            check_queries=view.check_queries - checks_before,
            atlas=self.atlas,
            owasp=self.owasp,
            paper=self.paper,
            seed=ctx.seed,
        )

    @abstractmethod
    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        """The attack itself."""


_VIEW_CAPS = frozenset({Capability.LABELS, Capability.PROBABILITIES, Capability.GRADIENTS, Capability.PARAMETERS})

_REQUIRED_META = ("name", "goal", "needs", "knowledge", "atlas", "owasp", "paper", "headline", "worse_when", "Config")


def check_attack_class(cls: type) -> None:
    """Reject an attack class whose metadata is incomplete (used by the registry)."""
    missing = [m for m in _REQUIRED_META if not hasattr(cls, m)]
    if missing:
        raise ConfigError(f"attack class {cls.__name__} lacks {', '.join(missing)}")
    if not (cls.__doc__ or "").strip():
        raise ConfigError(f"attack class {cls.__name__} has no docstring")
    if not dataclasses.is_dataclass(cls.Config):
        raise ConfigError(f"{cls.__name__}.Config must be a dataclass")
    if not isinstance(cls.goal, Goal) or not isinstance(cls.knowledge, Knowledge):
        raise ConfigError(f"{cls.__name__}: goal and knowledge must be aisec enums")
