"""The gateway over real HTTP (uvicorn on a loopback port): auth, input limits, policies, limits, audit."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from aisec.gateway.keys import PREFIX, KeyStore
from tests.gateway.conftest import GatewayProc, base_settings, launch, make_keys

pytestmark = pytest.mark.integration

KEYS = {
    "pred": "predict",
    "aud": "auditor",
    "adm": "admin",
    "revoked": "predict",
    "topk": "predict",
    "round": "predict",
    "label": "predict",
    "noise": "predict",
    "rate": "predict",
    "budget": "predict",
    "victim": "predict",
}


@pytest.fixture(scope="module")
def gw(cancer_model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    folder = tmp_path_factory.mktemp("gw")
    settings = base_settings(cancer_model_file, folder)
    tokens, ids = make_keys(folder / "keys.json", KEYS)
    KeyStore(folder / "keys.json").revoke(ids["revoked"])
    settings["policies"] = {
        "keys": {
            ids["topk"]: {"mode": "top-k", "top_k": 1},
            ids["round"]: {"mode": "probabilities", "decimals": 2},
            ids["label"]: {"mode": "label"},
            ids["noise"]: {"mode": "probabilities", "noise_std": 0.05},
        }
    }
    settings["key_limits"] = {ids["rate"]: {"per_second": 3}, ids["budget"]: {"queries_per_day": 10}}
    proc = launch(folder, settings)
    proc.keys, proc.ids = tokens, ids
    yield proc
    proc.stop()


def v2(x: np.ndarray, datatype: str = "FP64") -> dict[str, object]:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}]}


def queries_answered(gw: GatewayProc) -> float:
    text = httpx.get(f"{gw.url}/metrics", headers=gw.headers("aud")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("aisec_gateway_queries_total"))


# ------------------------------------------------------------------------------------------ auth


def test_auth_matrix(gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]) -> None:
    x = cancer_data[0][:2]
    bad_secret = gw.keys["pred"][:-4] + "AAAA"
    callers = {
        "none": {},
        "garbage": {"Authorization": "Bearer not-a-key"},
        "bad-secret": {"Authorization": f"Bearer {bad_secret}"},
        "revoked": gw.headers("revoked"),
        "basic": {"Authorization": f"Basic {gw.keys['pred']}"},
        "pred": gw.headers("pred"),
        "pred-x-api-key": {"X-API-Key": gw.keys["pred"]},
        "aud": gw.headers("aud"),
        "adm": gw.headers("adm"),
    }
    endpoints = {
        "predict": ("POST", "/predict", {"inputs": x.tolist()}),
        "infer": ("POST", "/v2/models/cancer/infer", v2(x)),
        "metadata": ("GET", "/v2/models/cancer", None),
        "metrics": ("GET", "/metrics", None),
        "audit": ("GET", "/audit", None),
        "keys": ("GET", "/admin/keys", None),
    }
    allowed = {
        "predict": {"pred", "pred-x-api-key"},
        "infer": {"pred", "pred-x-api-key"},
        "metadata": {"pred", "pred-x-api-key", "aud", "adm"},
        "metrics": {"aud", "adm"},
        "audit": {"aud", "adm"},
        "keys": {"adm"},
    }
    unauthenticated = {"none", "garbage", "bad-secret", "revoked", "basic"}
    bodies: dict[int, set[str]] = {401: set(), 403: set()}
    for ep, (method, path, body) in endpoints.items():
        for who, headers in callers.items():
            r = httpx.request(method, gw.url + path, headers=headers, json=body, timeout=10)
            want = 200 if who in allowed[ep] else 401 if who in unauthenticated else 403
            assert r.status_code == want, (ep, who, r.status_code, r.text)
            if want in bodies:
                bodies[want].add(r.text)
    # No detail leaks: every 401 (missing, malformed, wrong secret, revoked) reads the same, and so does every 403.
    assert len(bodies[401]) == 1 and len(bodies[403]) == 1
    assert gw.keys["pred"] not in "".join(bodies[401] | bodies[403])


def test_revocation_reaches_a_running_gateway(gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]) -> None:
    store = KeyStore(Path(gw.settings["keys_file"]))
    token, record = store.create("predict", "short-lived")
    body = {"inputs": cancer_data[0][:1].tolist()}
    assert httpx.post(f"{gw.url}/predict", json=body, headers={"X-API-Key": token}).status_code == 200
    store.revoke(record.id)
    assert httpx.post(f"{gw.url}/predict", json=body, headers={"X-API-Key": token}).status_code == 401


# ------------------------------------------------------------------------------------------ inputs


def _post_raw(gw: GatewayProc, path: str, content: bytes) -> httpx.Response:
    headers = {**gw.headers("pred"), "Content-Type": "application/json"}
    return httpx.post(gw.url + path, content=content, headers=headers, timeout=10)


def test_every_input_limit_is_enforced_before_the_model(
    gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x = cancer_data[0]
    row = x[0].tolist()
    before = queries_answered(gw)
    cases: list[tuple[str, str, bytes, int, str]] = [
        ("body too large", "/predict", json.dumps({"inputs": [row] * 200}).encode(), 413, "max_body_bytes"),
        ("not JSON", "/predict", b"{inputs: [", 422, "json"),
        ("wrong schema", "/predict", b'{"rows": [[1, 2]]}', 422, "schema"),
        ("extra field", "/v2/models/cancer/infer", json.dumps({**v2(x[:1]), "x": 1}).encode(), 422, "schema"),
        ("batch too large", "/predict", json.dumps({"inputs": [row] * 17}).encode(), 422, "max_batch"),
        ("v2 batch too large", "/v2/models/cancer/infer", json.dumps(v2(x[:17])).encode(), 422, "max_batch"),
        ("empty batch", "/predict", b'{"inputs": []}', 422, "max_batch"),
        ("wrong width", "/predict", json.dumps({"inputs": [row[:29]]}).encode(), 422, "shape"),
        ("ragged rows", "/predict", json.dumps({"inputs": [row, row[:3]]}).encode(), 422, "shape"),
        (
            "v2 shape/data mismatch",
            "/v2/models/cancer/infer",
            json.dumps({"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP32", "data": row}]}).encode(),
            422,
            "shape",
        ),
        ("strings for numbers", "/predict", json.dumps({"inputs": [["a"] * 30]}).encode(), 422, "dtype"),
        ("booleans", "/predict", json.dumps({"inputs": [[True] * 30]}).encode(), 422, "dtype"),
        ("v2 integer dtype", "/v2/models/cancer/infer", json.dumps(v2(x[:1], "INT32")).encode(), 422, "dtype"),
        ("v2 text dtype", "/v2/models/cancer/infer", json.dumps(v2(x[:1], "BYTES")).encode(), 422, "dtype"),
        ("out of range", "/predict", json.dumps({"inputs": [[100.0, *row[1:]]]}).encode(), 422, "value_range"),
        ("NaN", "/predict", ('{"inputs": [[NaN' + ", 0.0" * 29 + "]]}").encode(), 422, "finite"),
        ("infinity", "/predict", ('{"inputs": [[Infinity' + ", 0.0" * 29 + "]]}").encode(), 422, "finite"),
    ]
    for name, path, content, status, rule in cases:
        r = _post_raw(gw, path, content)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert r.json()["rule"] == rule, (name, r.json())
        assert "error" in r.json()

    # A body that lies about its length in a stream is cut off as well.
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(400):
            yield (json.dumps(row) + ",").encode()

    r = httpx.post(
        f"{gw.url}/predict", content=chunks(), headers={**gw.headers("pred"), "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["rule"] == "max_body_bytes"
    # The model saw none of them.
    assert queries_answered(gw) == before
    ok = _post_raw(gw, "/predict", json.dumps({"inputs": [row] * 16}).encode())
    assert ok.status_code == 200
    assert queries_answered(gw) == before + 16


# ------------------------------------------------------------------------------------------ policies


def test_output_policies(gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray], cancer_model_file: Path) -> None:
    x = cancer_data[0][:16]
    reference = joblib.load(cancer_model_file).predict_proba(x)
    body = {"inputs": x.tolist()}

    full = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("pred")).json()
    np.testing.assert_allclose(full["probabilities"], reference, atol=1e-6)
    assert full["labels"] == reference.argmax(1).tolist()

    label = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("label")).json()
    assert set(label) == {"labels"} and label["labels"] == full["labels"]

    topk = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("topk")).json()
    assert "probabilities" not in topk
    assert [c[0] for c in topk["top_k"]["classes"]] == full["labels"]
    assert all(len(c) == 1 for c in topk["top_k"]["classes"])
    np.testing.assert_allclose([s[0] for s in topk["top_k"]["scores"]], reference.max(1), atol=1e-6)

    rounded = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("round")).json()
    probs = np.asarray(rounded["probabilities"])
    np.testing.assert_allclose(probs, np.round(probs, 2), atol=1e-12)
    np.testing.assert_allclose(probs, reference, atol=0.005 + 1e-9)

    noisy = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("noise")).json()
    probs = np.asarray(noisy["probabilities"])
    assert noisy["labels"] == full["labels"] and probs.argmax(1).tolist() == full["labels"]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert np.abs(probs - reference).max() > 1e-3  # the scores did move

    # v2 carries the same policy: label-only answers no probabilities output.
    out = httpx.post(f"{gw.url}/v2/models/cancer/infer", json=v2(x), headers=gw.headers("label")).json()["outputs"]
    assert [o["name"] for o in out] == ["label"] and out[0]["data"] == full["labels"]


def test_aisec_http_target_reads_the_gateway(gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]) -> None:
    """aisec's own v2 client understands the gateway (probabilities and label-only keys)."""
    import torch

    from aisec.targets.http import HttpTarget

    x = torch.from_numpy(cancer_data[0][:8]).float()
    with HttpTarget(gw.url, model_name="cancer", n_classes=2, input_shape=(30,), modality="tabular",
                    headers=gw.headers("pred")) as t:  # fmt: skip
        probs = t._predict_proba(t.validate_inputs(x))
    with HttpTarget(gw.url, model_name="cancer", n_classes=2, input_shape=(30,), modality="tabular",
                    headers=gw.headers("label")) as t:  # fmt: skip
        labels = t._predict_labels(t.validate_inputs(x))
        assert t.returns == "labels"
    assert probs.argmax(1).tolist() == labels.tolist()


# ------------------------------------------------------------------------------------------ limits


def test_rate_limit_429_with_retry_after_then_recovery(
    gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]
) -> None:
    body = {"inputs": cancer_data[0][:1].tolist()}
    with httpx.Client(base_url=gw.url, headers=gw.headers("rate")) as client:
        started, admitted = time.monotonic(), 0
        for _ in range(50):
            refused = client.post("/predict", json=body)
            if refused.status_code != 200:
                break
            admitted += 1
        elapsed = time.monotonic() - started
    assert refused.status_code == 429 and refused.json()["rule"] == "per_second"
    # 3 per second: exactly 3 when the burst fitted in one second (a slow machine may spread it).
    assert admitted == 3 if elapsed < 1.0 else admitted >= 3, (admitted, elapsed)
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait + 0.1)
    assert httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("rate")).status_code == 200


def test_query_budget_counts_inputs_and_refunds_refused_batches(
    gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]
) -> None:
    x = cancer_data[0]
    post = lambda n: httpx.post(f"{gw.url}/predict", json={"inputs": x[:n].tolist()}, headers=gw.headers("budget"))  # noqa: E731
    assert post(6).status_code == 200
    over = post(6)
    assert over.status_code == 429 and over.json()["rule"] == "queries_per_day"
    assert int(over.headers["Retry-After"]) >= 1
    assert post(4).status_code == 200  # the refused batch cost nothing: 6 + 4 = 10
    assert post(1).status_code == 429
    # Other keys are not affected.
    assert (
        httpx.post(f"{gw.url}/predict", json={"inputs": x[:1].tolist()}, headers=gw.headers("pred")).status_code == 200
    )


# ------------------------------------------------------------------------------------------ audit, admin, metrics


def test_audit_rows_and_admin_actions(gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]) -> None:
    body = {"inputs": cancer_data[0][:3].tolist()}
    r = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("victim"))
    assert r.status_code == 200
    rows = httpx.get(f"{gw.url}/audit", params={"key_id": gw.ids["victim"]}, headers=gw.headers("aud")).json()["rows"]
    row = next(x for x in rows if x["request_id"] == r.headers["X-Request-ID"])
    assert row["status"] == 200 and row["decision"] == "answered" and row["n_inputs"] == 3
    assert row["output_class"] == r.json()["labels"] and row["policy"] == "probabilities"
    assert len(row["input_hash"]) == 64

    adm = gw.headers("adm")
    url = f"{gw.url}/admin/keys/{gw.ids['victim']}"
    assert httpx.put(f"{url}/action", json={"action": "block"}, headers=adm).status_code == 200
    blocked = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("victim"))
    assert blocked.status_code == 403 and "suspended" in blocked.json()["error"]
    assert httpx.put(f"{url}/action", json={"action": "clear"}, headers=adm).status_code == 200
    assert httpx.put(f"{url}/policy", json={"mode": "label"}, headers=adm).status_code == 200
    answer = httpx.post(f"{gw.url}/predict", json=body, headers=gw.headers("victim"))
    assert answer.status_code == 200 and set(answer.json()) == {"labels"}

    created = httpx.post(f"{gw.url}/admin/keys", json={"role": "predict", "name": "api"}, headers=adm)
    assert created.status_code == 201
    token, key_id = created.json()["key"], created.json()["id"]
    assert httpx.post(f"{gw.url}/predict", json=body, headers={"X-API-Key": token}).status_code == 200
    listed = httpx.get(f"{gw.url}/admin/keys", headers=adm).json()["keys"]
    assert key_id in {k["id"] for k in listed} and all("hash" not in k and "salt" not in k for k in listed)
    assert httpx.delete(f"{gw.url}/admin/keys/{key_id}", headers=adm).status_code == 200
    assert httpx.post(f"{gw.url}/predict", json=body, headers={"X-API-Key": token}).status_code == 401
    assert httpx.delete(f"{gw.url}/admin/keys/nope", headers=adm).status_code == 404
    # The keys file holds no secret: only salted hashes. (The secret is everything after the id: a urlsafe secret
    # may itself hold "_", and its last piece alone, e.g. "k", was found in the file by chance.)
    secret = token.removeprefix(PREFIX).partition("_")[2]
    assert len(secret) >= 40 and secret not in Path(gw.settings["keys_file"]).read_text()


def test_metrics_have_no_per_key_labels(gw: GatewayProc, cancer_data: tuple[np.ndarray, np.ndarray]) -> None:
    row = {"inputs": cancer_data[0][:1].tolist()}
    assert httpx.post(f"{gw.url}/predict", json=row, headers=gw.headers("pred")).status_code == 200
    assert httpx.post(f"{gw.url}/predict", json=row, headers={"Authorization": "Bearer nope"}).status_code == 401
    text = httpx.get(f"{gw.url}/metrics", headers=gw.headers("aud")).text
    for name in ("aisec_gateway_requests_total", "aisec_gateway_latency_seconds_bucket", "aisec_gateway_queries_total"):
        assert name in text
    assert 'decision="answered"' in text and 'status="401"' in text
    assert not any(key_id in text for key_id in gw.ids.values())


def test_health_metadata_and_openapi(gw: GatewayProc) -> None:
    assert httpx.get(f"{gw.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{gw.url}/v2/health/ready").json() == {"ready": True}
    meta = httpx.get(f"{gw.url}/v2/models/cancer", headers=gw.headers("pred")).json()
    assert meta["inputs"][0]["shape"] == [-1, 30] and meta["outputs"][0]["shape"] == [-1, 2]
    assert httpx.get(f"{gw.url}/v2/models/other", headers=gw.headers("pred")).status_code == 404
    spec = httpx.get(f"{gw.url}/openapi.json").json()
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/infer", "/predict"):
        assert path in spec["paths"]
    schema = spec["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "inputs" in schema["properties"] and not math.isnan(len(schema))


def test_a_remote_http_model_as_upstream(gw: GatewayProc, cancer_data, tmp_path: Path) -> None:
    """A gateway in front of a remote model (here: the running gateway, over KServe v2)."""
    import warnings

    from aisec.gateway.app import create_app
    from aisec.gateway.settings import parse_settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    model = {"kind": "http", "url": gw.url, "model_name": "cancer", "n_classes": 2, "input_shape": [30],
             "headers": gw.headers("pred"), "name": "front"}  # fmt: skip
    raw = {"model": model, "keys_file": str(tmp_path / "k.json"), "audit": {"path": str(tmp_path / "a.sqlite")}}
    tokens, _ = make_keys(tmp_path / "k.json", {"p": "predict"})
    front = TestClient(create_app(parse_settings(raw)))
    x = cancer_data[0][:5]
    direct = httpx.post(f"{gw.url}/predict", json={"inputs": x.tolist()}, headers=gw.headers("pred")).json()
    via = front.post("/predict", json={"inputs": x.tolist()}, headers={"X-API-Key": tokens["p"]})
    assert via.status_code == 200
    np.testing.assert_allclose(via.json()["probabilities"], direct["probabilities"], atol=1e-6)
    assert front.get("/v2/health/ready").status_code == 200
