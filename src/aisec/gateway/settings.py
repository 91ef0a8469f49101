"""Gateway settings, read from a YAML file (``aisec serve --config gateway.yaml``).

Everything the gateway enforces is here: the model behind it, where the API keys and the shared
state live, rate limits and query budgets, input limits, the output policy per role or key, the
monitors and what their alerts do, and the audit log. Relative paths are resolved against the
YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aisec.core.config import TargetSpec, format_validation_error
from aisec.errors import ConfigError

Role = Literal["predict", "auditor", "admin"]
ROLES: tuple[str, ...] = ("predict", "auditor", "admin")
AlertAction = Literal["log", "label-only", "throttle", "block"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(TargetSpec):
    """The upstream model: an aisec target spec plus what the gateway must know to serve it."""

    name: str = Field(
        "model", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Model name in /v2/models/{name}."
    )
    modality: Literal["image", "tabular", "text"] = "tabular"
    n_classes: int | None = Field(None, ge=2)
    class_names: list[str] | None = None


class RateLimits(_Strict):
    """Per-key limits; ``None`` means unlimited. A query budget counts inputs (cost = batch size)."""

    per_second: int | None = Field(None, ge=1, description="Requests per second.")
    per_minute: int | None = Field(None, ge=1, description="Requests per minute.")
    queries_per_day: int | None = Field(None, ge=1, description="Inputs per day (a batch of n costs n).")
    throttled_per_minute: int = Field(6, ge=1, description="Requests per minute of a key a monitor throttled.")


class InputLimits(_Strict):
    """What a request may carry; one that breaks a rule is refused before the model sees it."""

    max_body_bytes: int = Field(1_000_000, ge=64)
    max_batch: int = Field(64, ge=1)
    dtypes: list[Literal["FP16", "FP32", "FP64", "BYTES"]] = ["FP32", "FP64"]
    value_range: tuple[float, float] | None = Field(
        None, description="Allowed input values; defaults to the model's clip range."
    )
    max_text_length: int = Field(2_000, ge=1)

    @model_validator(mode="after")
    def _range(self) -> InputLimits:
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            raise ValueError("value_range: low must be below high")
        return self


class OutputPolicy(_Strict):
    """How much of the model's answer a caller gets.

    ``probabilities`` (optionally rounded to ``decimals`` and/or with label-preserving ``noise``
    of standard deviation ``noise_std``), ``top-k`` (the ``top_k`` best classes and scores) or
    ``label`` (the class only). Coarse outputs slow model extraction and membership inference
    (Tramèr et al., 2016, arXiv:1609.02943; Shokri et al., 2017, arXiv:1610.05820).
    """

    mode: Literal["probabilities", "top-k", "label"] = "probabilities"
    top_k: int = Field(1, ge=1)
    decimals: int | None = Field(None, ge=0, le=8)
    noise_std: float = Field(0.0, ge=0.0, le=1.0)


class Policies(_Strict):
    """Output policy per role, overridden per key id."""

    default: OutputPolicy = OutputPolicy()
    roles: dict[Role, OutputPolicy] = {}
    keys: dict[str, OutputPolicy] = {}


class AuditSettings(_Strict):
    """Where decisions are recorded: a SQLite file (WAL) or ``postgresql://...``."""

    path: str = "gateway-audit.sqlite"
    retention_days: float | None = Field(90.0, gt=0)
    synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite: 'normal' keeps acknowledged rows through a killed process; 'full' also through an OS crash, at a disk sync per request.",
    )


class GatewaySettings(_Strict):
    """Everything ``aisec serve`` needs."""

    model: ModelSettings
    keys_file: str = "gateway-keys.json"
    store_url: str | None = Field(None, description="memory:// (default) or redis://host:port/db.")
    limits: RateLimits = RateLimits()
    key_limits: dict[str, RateLimits] = Field(default_factory=dict, description="Per key id overrides.")
    inputs: InputLimits = InputLimits()
    policies: Policies = Policies()
    monitors: list[dict[str, Any]] = Field(default_factory=list)
    alert_actions: dict[str, AlertAction] = Field(
        default_factory=dict, description="Per monitor name: overrides the action the monitor's alert asks for."
    )
    action_ttl_s: float = Field(3600.0, gt=0, description="How long label-only, throttle and block last.")
    reference_data: str | None = Field(None, description="An .npz (array 'x') of in-distribution inputs for monitors.")
    audit: AuditSettings = AuditSettings()
    trust_proxy_headers: bool = False

    def limits_for(self, key_id: str) -> RateLimits:
        return self.key_limits.get(key_id, self.limits)

    def policy_for(self, key_id: str, role: str) -> OutputPolicy:
        if key_id in self.policies.keys:
            return self.policies.keys[key_id]
        return self.policies.roles.get(role, self.policies.default)  # type: ignore[call-overload]


def _fix(p: str | None, base: Path) -> str | None:
    if p is None or "://" in p or Path(p).is_absolute():
        return p
    return str((base / p).resolve())


def parse_settings(data: Any, *, source: str = "gateway settings", base_dir: Path | None = None) -> GatewaySettings:
    """Validate settings given as a mapping; relative paths are taken from ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with at least 'model'")
    try:
        settings = GatewaySettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, GatewaySettings)) from None
    if base_dir is None:
        return settings
    model = settings.model.model_copy(update={"path": _fix(settings.model.path, base_dir)})
    audit = settings.audit.model_copy(update={"path": _fix(settings.audit.path, base_dir)})
    return settings.model_copy(
        update={
            "model": model,
            "audit": audit,
            "keys_file": _fix(settings.keys_file, base_dir),
            "reference_data": _fix(settings.reference_data, base_dir),
        }
    )


def load_settings(path: str | Path) -> GatewaySettings:
    """Read and validate a gateway YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"gateway settings not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from None
    return parse_settings(data, source=str(path), base_dir=path.parent)


__all__ = [
    "ROLES",
    "AuditSettings",
    "GatewaySettings",
    "InputLimits",
    "ModelSettings",
    "OutputPolicy",
    "Policies",
    "RateLimits",
    "load_settings",
    "parse_settings",
]
