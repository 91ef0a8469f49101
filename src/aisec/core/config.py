"""Spec files: the YAML a user writes to describe target, data, threat model and attacks.

Validated with pydantic; a bad spec raises one :class:`ConfigError` that names the field, what
was given and what is allowed. Relative paths are resolved against the spec file's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aisec.core.goals import Goal, Knowledge, OutputKind, ProtectionNeed
from aisec.core.threat_model import ThreatModel
from aisec.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _norm(v: Any) -> Any:
    """Spell a choice the way aisec does: lower case, dashes (``Very_High`` -> ``very-high``)."""
    return v.strip().lower().replace("_", "-") if isinstance(v, str) else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecipeSpec(_Strict):
    """How the target was trained, as a grey-box attacker knows it (an MLP on flattened inputs, Adam).

    The shadow-model attacks (``lira``, ``rmia``, ``shokri``, ``dp-audit``, ``property-inference``) train their
    shadows with it wherever their own parameters leave a field unset.
    """

    hidden: list[int] | None = Field(None, description="Widths of the hidden ReLU layers.")
    epochs: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0, description="Adam's learning rate.")
    batch_size: int | None = Field(None, ge=1)
    weight_decay: float | None = Field(None, ge=0)

    @field_validator("hidden")
    @classmethod
    def _widths(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(w < 1 for w in v)):
            raise ValueError("expected a list of positive layer widths")
        return v

    def given(self) -> dict[str, Any]:
        """The fields that are set."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class TargetSpec(_Strict):
    """What is under test."""

    kind: Literal["torch", "sklearn", "onnx", "http"]
    path: str | None = Field(None, description="Model file (torch, sklearn, onnx).")
    url: str | None = Field(None, description="Base URL of a remote model (http).")
    model_name: str | None = Field(None, description="Model name for the Open Inference Protocol (http).")
    protocol: Literal["v2", "json"] = Field("v2", description="http: KServe v2 or plain JSON.")
    trust: bool = Field(False, description="The user trusts a pickle/joblib file (loading runs its code).")
    input_shape: list[int] | None = None
    clip: tuple[float, float] | None = None
    n_classes: int | None = None
    outputs: Literal["logits", "probabilities"] = "logits"
    device: str = "auto"
    memory_format: Literal["auto", "contiguous", "channels_last"] = Field(
        "auto",
        description=(
            "torch: the layout the model runs in. 'auto' runs a CNN on the CPU through a checked channels-last copy "
            "(about 2x faster per query); 'contiguous' runs the model as loaded."
        ),
    )
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0)
    batch_size: int = Field(256, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    returns: Literal["probabilities", "labels"] | None = Field(
        None, description="http: what the API answers; found out from the first answer when unset."
    )
    trainer: str | None = Field(
        None,
        description=(
            "Training recipe for poisoning attacks: 'package.module:function' taking (x, y, seed) and returning "
            "a trained torch model. sklearn targets need none: aisec clones and refits the estimator."
        ),
    )
    recipe: RecipeSpec | None = Field(
        None, description="How the target was trained (hidden widths, epochs, lr, batch size): shadow models copy it."
    )

    @model_validator(mode="after")
    def _where(self) -> TargetSpec:
        if self.kind == "http":
            if not self.url:
                raise ValueError("an http target needs url")
        elif not self.path:
            raise ValueError(f"a {self.kind} target needs path")
        if self.kind != "torch" and self.memory_format != "auto":
            raise ValueError(f"memory_format applies to torch targets, not {self.kind}")
        return self


class DataSpec(_Strict):
    """The data the assessment runs on; the target must have been trained on its train split."""

    kind: Literal["digits", "breast_cancer", "sms_spam", "npz", "csv"]
    path: str | None = None
    label_column: str = "label"
    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _path(self) -> DataSpec:
        if self.kind in ("npz", "csv") and not self.path:
            raise ValueError(f"data of kind {self.kind} needs path")
        return self


class ThreatModelSpec(_Strict):
    """The attacker and the protection needs (see :class:`aisec.core.threat_model.ThreatModel`)."""

    knowledge: Knowledge = Knowledge.BLACK_BOX
    output: OutputKind = OutputKind.PROBABILITIES
    top_k: int = Field(1, ge=1)
    query_budget: int | None = Field(10_000, ge=0)
    training_data: list[
        Literal["add-points", "add-unlabeled-points", "delete-points", "modify-points", "flip-labels"]
    ] = []
    manipulate_training: bool = False
    needs: dict[Goal, ProtectionNeed] = Field(default_factory=lambda: {g: ProtectionNeed.NORMAL for g in Goal})
    epsilon: float | None = Field(None, ge=0)

    @field_validator("training_data", mode="before")
    @classmethod
    def _dashes(cls, v: Any) -> Any:
        return [str(c).replace("_", "-") for c in v] if isinstance(v, list) else v

    @field_validator("knowledge", "output", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return _norm(v)

    @field_validator("needs", mode="before")
    @classmethod
    def _needs(cls, v: Any) -> Any:
        return {_norm(g): _norm(n) for g, n in v.items()} if isinstance(v, dict) else v

    def build(self) -> ThreatModel:
        return ThreatModel(
            knowledge=self.knowledge,
            output=self.output,
            top_k=self.top_k,
            query_budget=self.query_budget,
            training_data=frozenset(self.training_data),  # type: ignore[arg-type]
            manipulate_training=self.manipulate_training,
            needs=dict(self.needs),
            epsilon=self.epsilon,
        )


class AttackSpec(BaseModel):
    """One attack of an explicit list: its registered name and its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Spec(_Strict):
    """A whole assessment."""

    name: str
    target: TargetSpec
    data: DataSpec
    threat_model: ThreatModelSpec = ThreatModelSpec()
    attacks: Literal["auto"] | list[AttackSpec] = "auto"
    seed: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or digit")
        return v

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_names(cls, v: Any) -> Any:
        # Check the shape here, so that a wrong value gives one message instead of one per union branch.
        if v == "auto":
            return v
        if not isinstance(v, list):
            from aisec.registry import attacks

            raise ValueError(f"expected 'auto' or a list of attacks; known attacks: {', '.join(attacks())}")
        out = []
        for i, a in enumerate(v):
            if isinstance(a, str):
                a = {"name": a}
            if not isinstance(a, dict) or not isinstance(a.get("name"), str):
                raise ValueError(f"item {i}: expected an attack name or a mapping with name and parameters")
            out.append(a)
        return out

    @property
    def threat(self) -> ThreatModel:
        return self.threat_model.build()


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the nested model that ``loc`` (a path to one of its fields) points into."""
    for part in loc[:-1]:
        info = model.model_fields.get(str(part))
        ann = info.annotation if info is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def format_validation_error(exc: ValidationError, source: str = "spec", model: type[BaseModel] | None = None) -> str:
    """One line naming the first bad field, the value given and what is allowed."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("literal[", "function-")))
        loc = loc or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
        if err["type"] == "extra_forbidden":
            fields = _fields_at(model, tuple(err["loc"])) if model is not None else []
            msg, shown = "unknown field" + (f"; allowed: {', '.join(fields)}" if fields else ""), ""
        if err["type"] == "missing":
            msg = "required field is missing"
        expected = (err.get("ctx") or {}).get("expected")
        if expected:
            msg, shown = f"{given!r} is not allowed; allowed: {expected}", ""
        parts.append(f"{loc}: {msg}{shown}")
    more = f" (+{len(exc.errors()) - 3} more)" if len(exc.errors()) > 3 else ""
    return f"{source}: " + "; ".join(parts) + more


def parse_spec(data: Any, *, source: str = "spec", base_dir: Path | None = None) -> Spec:
    """Validate a spec given as a mapping; paths are resolved against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with name, target, data, threat_model, attacks")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, Spec)) from None
    if base_dir is not None:
        spec = resolve_paths(spec, base_dir)
    if spec.attacks != "auto":
        from aisec.registry import get_attack

        for i, a in enumerate(spec.attacks):
            try:
                get_attack(a.name).config_from(a.params)
            except ConfigError as exc:
                raise ConfigError(f"{source}: attacks[{i}]: {exc}") from None
    return spec


def resolve_paths(spec: Spec, base_dir: Path) -> Spec:
    """A copy of ``spec`` whose relative file paths are taken relative to ``base_dir``."""

    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        return str((base_dir / p).resolve())

    target = spec.target.model_copy(update={"path": fix(spec.target.path)})
    data = spec.data.model_copy(update={"path": fix(spec.data.path)})
    return spec.model_copy(update={"target": target, "data": data})


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"spec file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_spec(data, source=str(path), base_dir=path.parent)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """Plain JSON-ready form of a spec (as recorded in a run folder)."""
    return spec.model_dump(mode="json")
