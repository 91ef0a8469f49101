"""Property-based fuzz of the gateway from its own OpenAPI spec: whatever is sent, never a 500.

Requests are generated per operation of ``/openapi.json``: path and query parameters from their
schemas (or arbitrary text), bodies from the request-body schema (mutated now and then into
arbitrary JSON) and any of the keys (none, garbage, predict, auditor, admin).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.gateway.app import create_app
from aisec.gateway.settings import parse_settings
from tests.gateway.conftest import base_settings, make_keys

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)
#: Tables of numbers shaped like the model's inputs (30 features), so that fuzzing reaches the model.
ROWS = st.lists(st.lists(st.floats(-4, 4) | st.integers(-3, 3), min_size=30, max_size=30), min_size=1, max_size=20)


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that mostly fit a JSON Schema (enough of it for the gateway's own schemas)."""
    if depth > 6:
        return JSON
    for combo in ("anyOf", "oneOf"):
        if combo in schema:
            return st.one_of([from_schema(s, depth + 1) for s in schema[combo]])
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: from_schema(v, depth + 1) for k, v in props.items() if k in required}
        optional = {k: from_schema(v, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        items = schema.get("items", {})
        if not items:  # an untyped list: arbitrary JSON or rows of numbers
            return st.lists(JSON, max_size=10) | ROWS
        return st.lists(from_schema(items, depth + 1), max_size=min(schema.get("maxItems", 40), 40))
    if kind == "string":
        return st.text(max_size=min(schema.get("maxLength", 30), 30))
    if kind == "integer":
        return st.integers(min_value=-3, max_value=70)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, min_value=-50, max_value=50)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON


@pytest.fixture(scope="module")
def fuzz_env(cancer_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, dict, dict]:
    folder = tmp_path_factory.mktemp("fuzz")
    raw = base_settings(cancer_model_file, folder)
    raw["limits"] = {"per_second": 10_000}
    tokens, _ = make_keys(folder / "keys.json", {"predict": "predict", "auditor": "auditor", "admin": "admin"})
    client = TestClient(create_app(parse_settings(raw)), raise_server_exceptions=False)
    spec = client.get("/openapi.json").json()
    headers = {"none": {}, "garbage": {"Authorization": "Bearer aisec_x_y"}}
    headers |= {name: {"X-API-Key": tok} for name, tok in tokens.items()}
    return client, spec, headers


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_spec_lists_every_route(fuzz_env: tuple[TestClient, dict, dict]) -> None:
    _, spec, _ = fuzz_env
    assert len(_operations(spec)) >= 14


@st.composite
def requests(draw: st.DrawFn, spec: dict[str, Any], who: list[str]) -> tuple[str, str, dict[str, Any], Any, str]:
    ops = _operations(spec)
    # Operations with a body (the model's endpoints above all) get more of the draws.
    path, method, op = draw(st.sampled_from(ops + [o for o in ops if "requestBody" in o[2]] * 4))
    url, query = path, {}
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        if param["in"] == "path":
            value = draw(st.sampled_from(["cancer", "model"]) | st.text(min_size=1, max_size=12))
            url = url.replace("{" + param["name"] + "}", quote(str(value), safe=""))
        elif param["in"] == "query" and draw(st.booleans()):
            query[param["name"]] = draw(from_schema(schema) | st.text(max_size=10))
    body: Any = None
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None:
        body = draw(from_schema(content["schema"]) if draw(st.integers(0, 4)) else JSON)
    caller = draw(st.sampled_from(who) | st.just("predict"))  # half of the calls with a predict key
    return method.upper(), url, {k: str(v) for k, v in query.items()}, body, caller


def test_no_request_makes_a_500(fuzz_env: tuple[TestClient, dict, dict]) -> None:
    client, spec, headers = fuzz_env

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(req=requests(spec, sorted(headers)))
    def check(req: tuple[str, str, dict[str, Any], Any, str]) -> None:
        method, url, query, body, who = req
        content = None if body is None else json.dumps(body, allow_nan=True).encode()
        r = client.request(method, url, params=query, content=content,
                           headers={**headers[who], "Content-Type": "application/json"})  # fmt: skip
        assert r.status_code < 500, (method, url, query, body, who, r.status_code, r.text)
        if url != "/metrics" or r.status_code != 200:
            r.json()

    check()


def test_model_shaped_bodies_never_500(fuzz_env: tuple[TestClient, dict, dict], cancer_data) -> None:
    """Near-valid v2 requests (right name, shapes and dtypes perturbed) stress the input checks."""
    client, _, headers = fuzz_env
    row = cancer_data[0][0]

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        n=st.integers(-1, 20),
        width=st.sampled_from([0, 1, 29, 30, 31]),
        datatype=st.sampled_from(["FP32", "FP64", "FP16", "INT64", "BYTES", "fp32", "X"]),
        scale=st.floats(allow_nan=True, allow_infinity=True, width=64),
        extra=st.lists(JSON, max_size=2),
    )
    def check(n: int, width: int, datatype: str, scale: float, extra: list[Any]) -> None:
        data = (np.resize(row, max(n, 0) * width) * 1.0).tolist()
        if data:
            data[0] = scale
        data += extra
        body = {"inputs": [{"name": "x", "shape": [n, width], "datatype": datatype, "data": data}]}
        r = client.post("/v2/models/cancer/infer", content=json.dumps(body, allow_nan=True).encode(),
                        headers={**headers["predict"], "Content-Type": "application/json"})  # fmt: skip
        assert r.status_code in (200, 413, 422), (body, r.status_code, r.text)

    check()
