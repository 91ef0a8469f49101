"""Findings: what one attack run measured, in a versioned JSON schema.

A finding is one line of ``results.jsonl`` in a run folder. Its schema is versioned by
``schema_version``; :func:`finding_json_schema` returns the JSON Schema (draft 2020-12) that a
line validates against, so other tools can read run folders without importing aisec.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.errors import ConfigError

#: Version of the finding schema written by this aisec. Bump on incompatible changes.
SCHEMA_VERSION = 1

Status = Literal["ok", "error"]


def jsonable(value: Any) -> Any:
    """Turn NumPy / torch scalars and arrays into plain JSON values; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


class Finding(BaseModel):
    """What one attack run measured.

    ``metrics`` holds numbers (and small lists such as curve points); large arrays go to
    evidence files, named in ``evidence`` by a path relative to the run folder.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    job_id: str = Field(description="Identifier of the plan job that produced this finding.")
    attack: str = Field(description="Registered name of the attack, e.g. 'fgsm'.")
    goal: Goal
    knowledge: Knowledge = Field(description="Knowledge of the attacker the attack ran as.")
    output: OutputKind = Field(description="Output kind the target view returned.")
    status: Status = "ok"
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    headline: str | None = Field(None, description="Name of the metric that summarises the finding.")
    worse_when: Literal["higher", "lower"] | None = Field(
        None, description="Whether a higher or a lower headline value means a weaker model."
    )
    summary: str = ""
    flags: list[str] = Field(default_factory=list, description="Warnings about the evaluation itself.")
    evidence: dict[str, str] = Field(default_factory=dict)
    seconds: float = 0.0
    queries: int = Field(0, description="Queries the attack sent to the target, charged to its query budget.")
    check_queries: int = Field(
        0,
        description="Inputs the assessor's own checks sent to the target (to score what the attack achieved, "
        "e.g. a stolen copy's fidelity): not the attacker's, not charged to its budget, but received by the target.",
    )
    atlas: str = ""
    owasp: str = ""
    paper: str = ""
    error: str | None = None
    seed: int | None = None

    @field_validator("config", "metrics", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return jsonable(value)

    def to_json(self) -> str:
        """One line of JSON, as written to ``results.jsonl``."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Finding:
        """Parse one line of ``results.jsonl``; raises :class:`ConfigError` if it is not a finding."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not a JSON line: {exc.msg} at column {exc.colno}") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ConfigError(f"finding schema_version {version!r} is not supported; this aisec reads {SCHEMA_VERSION}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"invalid finding: {where}: {first['msg']}") from None


def finding_json_schema() -> dict[str, Any]:
    """The JSON Schema of one finding line."""
    schema = Finding.model_json_schema()
    # from_json reads only lines of this version, and only lines that say so: the schema says the same
    schema["properties"]["schema_version"]["const"] = SCHEMA_VERSION
    schema["required"] = ["schema_version", *(r for r in schema.get("required", []) if r != "schema_version")]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:aisec:finding:v{SCHEMA_VERSION}"
    return schema
