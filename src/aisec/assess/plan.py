"""The plan: which attacks an assessment runs, with which parameters, and what it skips and why."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aisec.attacks.base import Attack
from aisec.core.config import Spec
from aisec.core.goals import MODEL_ACCESS_CAPABILITIES, Goal
from aisec.core.threat_model import ThreatModel
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.registry import attacks, get_attack
from aisec.targets.base import Target


@dataclass(frozen=True, slots=True)
class Job:
    """One attack run of the plan. ``id`` is stable for the same attack and parameters."""

    id: str
    attack: str
    goal: Goal
    params: Mapping[str, Any]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "attack": self.attack,
            "goal": self.goal.value,
            "params": dict(self.params),
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """An attack the plan did not select, and why."""

    attack: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The jobs to run, in order, and the attacks left out with their reasons."""

    jobs: tuple[Job, ...]
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "jobs": [j.to_dict() for j in self.jobs],
            "skipped": [{"attack": s.attack, "reason": s.reason} for s in self.skipped],
        }


def job_id(attack: str, params: Mapping[str, Any]) -> str:
    """``name-hash`` of the attack's full parameters: the same job gets the same id in every run."""
    blob = json.dumps(dict(params), sort_keys=True, default=str).encode()
    return f"{attack}-{hashlib.sha256(blob).hexdigest()[:8]}"


def job_seed(base_seed: int, jid: str) -> int:
    """A per-job seed derived from the spec's seed and the job id (stable across runs)."""
    return (base_seed * 1_000_003 + zlib.crc32(jid.encode())) % (2**31 - 1)


def why_not(
    cls: type[Attack],
    threat: ThreatModel,
    target: Target,
    data: Dataset,
    *,
    can_retrain: bool = False,
    params: Mapping[str, Any] | None = None,
) -> str | None:
    """The reason ``cls`` cannot run against this target under this threat model, or ``None``.

    ``can_retrain`` says whether a training recipe for the target exists (see
    :func:`aisec.targets.recipe.recipe_for`); attacks that retrain the target need one. ``params``
    configure the attack whose query needs are checked against the budget (default: its defaults).
    """
    if data.modality not in cls.modalities:
        allowed = ", ".join(sorted(m.value for m in cls.modalities))
        return f"works on {allowed} inputs, the data is {data.modality.value}"
    granted = threat.grants()
    denied = sorted(c.value for c in cls.needs - granted)
    if denied:
        return f"needs {', '.join(denied)}, which a {threat.knowledge} attacker with {threat.output} output lacks"
    model_needs = cls.needs & MODEL_ACCESS_CAPABILITIES
    unsupported = sorted(c.value for c in model_needs - target.capabilities)
    if unsupported:
        return f"needs {', '.join(unsupported)}, which the {target.kind} target cannot provide"
    if cls.retrains and not can_retrain:
        return (
            f"retrains the target, and aisec has no training recipe for this {target.kind} target "
            "(give target.trainer: 'package.module:function')"
        )
    needed = cls.from_params(params or {}).queries_needed(target.input_shape)
    if threat.query_budget is not None and needed > threat.query_budget:
        return f"needs at least {needed} queries, the budget is {threat.query_budget}"
    return None


RECIPE_FIELDS = frozenset({"hidden", "epochs", "lr", "batch_size", "weight_decay"})
"""A config with all of these trains shadows with the target's recipe (``target.recipe`` fills them in)."""


def _params(
    cls: type[Attack], given: Mapping[str, Any], threat: ThreatModel, recipe: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    params = dict(given)
    declared = dataclasses.fields(cls.Config)
    fields = {f.name for f in declared}
    # a scalar eps takes the threat model's epsilon; a grid (a tuple) derives its own from the threat model
    scalar = {f.name for f in declared if not str(f.type).startswith(("tuple", "list"))}
    if threat.epsilon is not None and "eps" in scalar and "eps" not in params:
        params["eps"] = threat.epsilon
    if recipe:  # the spec's training recipe, where the attack's own parameters leave a field unset
        if fields >= RECIPE_FIELDS:
            params = {**recipe, **params}
        elif "lira" in fields:  # dp-audit: the recipe of the LiRA it runs
            params["lira"] = {**recipe, **dict(params.get("lira") or {})}
    return dataclasses.asdict(cls.config_from(params))


def make_plan(spec: Spec, target: Target, data: Dataset, *, can_retrain: bool | None = None) -> Plan:
    """Select the attacks for this spec.

    ``attacks: auto`` takes every registered attack that hurts a goal with a declared need and
    whose needs fit the threat model, the target and the data; the others are listed as skipped
    with the reason. An explicit list runs what it names and fails with :class:`ConfigError` when
    a named attack cannot run under the threat model (asking for it is then a mistake to fix).
    ``can_retrain`` says whether the target has a training recipe; by default an sklearn target
    or a spec naming ``target.trainer`` has one.
    """
    threat = spec.threat
    if can_retrain is None:
        can_retrain = spec.target.kind == "sklearn" or spec.target.trainer is not None
    jobs: list[Job] = []
    skipped: list[Skipped] = []
    if spec.attacks == "auto":
        wanted: list[tuple[type[Attack], dict[str, Any]]] = [(cls, {}) for cls in attacks().values()]
    else:
        wanted = [(get_attack(a.name), a.params) for a in spec.attacks]
    for cls, given in wanted:
        if spec.attacks == "auto" and cls.goal not in threat.needs:
            skipped.append(Skipped(cls.name, f"no protection need declared for {cls.goal.value}"))
            continue
        params = _params(cls, given, threat, spec.target.recipe.given() if spec.target.recipe else None)
        reason = why_not(cls, threat, target, data, can_retrain=can_retrain, params=params)
        if reason is not None:
            if spec.attacks != "auto":
                raise ConfigError(f"attack {cls.name!r} cannot run here: it {reason}")
            skipped.append(Skipped(cls.name, reason))
            continue
        jid = job_id(cls.name, params)
        if any(j.id == jid for j in jobs):
            continue  # the same attack with the same parameters twice is one job
        jobs.append(Job(jid, cls.name, cls.goal, params, job_seed(spec.seed, jid)))
    return Plan(tuple(jobs), tuple(skipped))
