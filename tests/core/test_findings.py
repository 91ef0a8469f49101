"""Findings: one JSON line per attack run, versioned, with a JSON Schema other tools can use."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.core.findings import SCHEMA_VERSION, Finding, finding_json_schema
from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.data import Dataset
from aisec.errors import ConfigError
from aisec.registry import get_attack
from aisec.targets import SklearnTarget


def _finding(**kw: Any) -> Finding:
    base: dict[str, Any] = {
        "job_id": "fgsm-1234abcd",
        "attack": "fgsm",
        "goal": Goal.INTEGRITY,
        "knowledge": Knowledge.WHITE_BOX,
        "output": OutputKind.PROBABILITIES,
        "config": {"eps": 0.1, "n_samples": None},
        "metrics": {"robust_accuracy": 0.25, "clean_accuracy": 0.97, "curve": [0.1, 0.2]},
        "headline": "robust_accuracy",
        "summary": "FGSM at eps=0.1",
        "flags": ["small sample"],
        "evidence": {"arrays": "evidence/fgsm-1234abcd.npz"},
        "seconds": 1.25,
        "queries": 0,
        "atlas": "AML.T0043.000",
        "owasp": "ML01",
        "paper": "Goodfellow et al. 2015",
        "seed": 7,
    }
    return Finding(**(base | kw))


@pytest.fixture(scope="module")
def real_line(cancer: Dataset, cancer_sklearn_target: SklearnTarget) -> str:
    """A line written from a real run of loss-threshold."""
    view = cancer_sklearn_target.view("black-box", "probabilities")
    finding = get_attack("loss-threshold")(n_samples=50).run(view, cancer, AttackContext(seed=3, job_id="lt"))
    return finding.to_json()


def test_json_round_trip_is_exact() -> None:
    f = _finding()
    line = f.to_json()
    assert "\n" not in line
    assert Finding.from_json(line) == f
    assert json.loads(line)["schema_version"] == SCHEMA_VERSION


def test_numpy_and_torch_values_become_plain_json_and_non_finite_become_null() -> None:
    f = _finding(
        metrics={
            "a": np.float32(0.5),
            "b": torch.tensor(3),
            "c": np.arange(3),
            "d": math.nan,
            "e": [math.inf, 1.0],
            "f": {"g": np.int64(2)},
        },
        config={"eps": np.float64(0.25)},
    )
    data = json.loads(f.to_json())
    assert data["metrics"] == {"a": 0.5, "b": 3, "c": [0, 1, 2], "d": None, "e": [None, 1.0], "f": {"g": 2}}
    assert data["config"] == {"eps": 0.25}
    assert Finding.from_json(f.to_json()) == f


def test_real_finding_round_trips(real_line: str) -> None:
    f = Finding.from_json(real_line)
    assert f.attack == "loss-threshold"
    assert f.goal is Goal.PRIVACY
    assert f.to_json() == real_line


@pytest.mark.parametrize("version", [None, 0, SCHEMA_VERSION + 1, "1"])
def test_other_schema_versions_are_refused(version: object) -> None:
    data = json.loads(_finding().to_json())
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    with pytest.raises(ConfigError, match="schema_version"):
        Finding.from_json(json.dumps(data))


def test_a_line_that_is_not_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a JSON line"):
        Finding.from_json('{"schema_version": 1,')


@pytest.mark.parametrize(("key", "value"), [("goal", "speed"), ("queries", "many"), ("surprise", 1)])
def test_an_invalid_finding_names_the_field(key: str, value: object) -> None:
    data = json.loads(_finding().to_json()) | {key: value}
    with pytest.raises(ConfigError, match=rf"invalid finding: {key}"):
        Finding.from_json(json.dumps(data))


def test_findings_are_immutable() -> None:
    with pytest.raises(ValueError):
        _finding().attack = "pgd"  # type: ignore[misc]


# -- the JSON Schema ------------------------------------------------------------------------------


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    """A small validator for the JSON Schema keywords pydantic emits (enough to check one line)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        schema = {**root["$defs"][name], **{k: v for k, v in schema.items() if k != "$ref"}}
    errors: list[str] = []
    if "anyOf" in schema:
        if all(_check(value, s, root, where) for s in schema["anyOf"]):
            errors.append(f"{where}: matches none of anyOf")
        return errors
    types = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "object": dict,
        "array": list,
        "null": type(None),
    }
    t = schema.get("type")
    if t is not None:
        ok = isinstance(value, types[t]) and not (t in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return [f"{where}: expected {t}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} != {schema['const']!r}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}.{k}: required" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in props:
                errors += _check(v, props[k], root, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}.{k}: not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _check(v, schema["additionalProperties"], root, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += _check(v, schema["items"], root, f"{where}[{i}]")
    return errors


def test_schema_describes_a_real_line(real_line: str) -> None:
    schema = finding_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"v{SCHEMA_VERSION}")
    data = json.loads(real_line)
    assert _check(data, schema, schema) == []
    assert set(schema["properties"]) == set(data)  # every field of a line is described, and only those


@pytest.mark.parametrize(
    ("key", "value"),
    [("goal", "speed"), ("knowledge", "glass-box"), ("queries", "12"), ("schema_version", 2), ("extra", 1)],
)
def test_schema_rejects_a_broken_line(real_line: str, key: str, value: object) -> None:
    schema = finding_json_schema()
    assert _check(json.loads(real_line) | {key: value}, schema, schema) != []


def test_schema_requires_what_from_json_requires(real_line: str) -> None:
    schema = finding_json_schema()
    for key in ("schema_version", "job_id", "attack", "goal", "knowledge", "output"):
        data = json.loads(real_line)
        del data[key]
        assert _check(data, schema, schema) != [], key
        with pytest.raises(ConfigError):
            Finding.from_json(json.dumps(data))


def test_jsonschema_validates_a_real_line(real_line: str) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (not an aisec dependency)")
    schema = finding_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator.validate(json.loads(real_line))
    assert not validator.is_valid(json.loads(real_line) | {"goal": "speed"})
    assert not validator.is_valid(json.loads(real_line) | {"schema_version": 2})
