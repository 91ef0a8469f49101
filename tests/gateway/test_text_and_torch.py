"""Other upstreams: a text pipeline served over HTTP (text limits), a torch image model in process."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import torch

from aisec.gateway.app import create_app
from aisec.gateway.settings import parse_settings
from aisec.targets import TorchTarget
from tests.gateway.conftest import GatewayProc, launch, make_keys
from tests.helpers import tiny_text_dataset, train_text_pipeline

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def text_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProc]:
    folder = tmp_path_factory.mktemp("text-gw")
    joblib.dump(train_text_pipeline(tiny_text_dataset()), folder / "spam.joblib")
    settings = {
        "model": {"kind": "sklearn", "path": "spam.joblib", "trust": True, "modality": "text", "name": "spam"},
        "keys_file": "keys.json",
        "audit": {"path": "audit.sqlite"},
        "inputs": {"max_text_length": 40, "max_batch": 4, "dtypes": ["BYTES"]},
    }
    tokens, ids = make_keys(folder / "keys.json", {"p": "predict"})
    gw = launch(folder, settings)
    gw.keys, gw.ids = tokens, ids
    yield gw
    gw.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_text_model_over_http_and_its_limits(text_gw: GatewayProc) -> None:
    url, h = text_gw.url, text_gw.headers("p")
    texts = ["win a free prize now", "see you at lunch"]
    local = joblib.load(Path(text_gw.config).parent / "spam.joblib").predict_proba(texts)
    plain = httpx.post(f"{url}/predict", json={"inputs": texts}, headers=h)
    assert plain.status_code == 200
    np.testing.assert_allclose(plain.json()["probabilities"], local, atol=1e-6)
    body = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}
    v2 = httpx.post(f"{url}/v2/models/spam/infer", json=body, headers=h)
    assert v2.status_code == 200 and v2.json()["outputs"][-1]["data"] == local.argmax(1).tolist()
    refused = {
        "max_text_length": {"inputs": ["x" * 41]},
        "dtype": {"inputs": [3.5]},
        "max_batch": {"inputs": ["a"] * 5},
    }
    for rule, payload in refused.items():
        r = httpx.post(f"{url}/predict", json=payload, headers=h)
        assert r.status_code == 422 and r.json()["rule"] == rule, (rule, r.text)
    wrong = [
        ({"name": "t", "shape": [1], "datatype": "FP32", "data": [1.0]}, "dtype"),
        ({"name": "t", "shape": [1, 1], "datatype": "BYTES", "data": ["a"]}, "shape"),
        ({"name": "t", "shape": [1], "datatype": "BYTES", "data": ["y" * 41]}, "max_text_length"),
    ]
    for inp, rule in wrong:
        r = httpx.post(f"{url}/v2/models/spam/infer", json={"inputs": [inp]}, headers=h)
        assert r.status_code == 422 and r.json()["rule"] == rule, (rule, r.text)


def test_torch_image_model_in_process(digits_cnn_target: TorchTarget, digits, tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "model": {
                "kind": "torch",
                "path": "unused.pt",
                "input_shape": [1, 8, 8],
                "n_classes": 10,
                "modality": "image",
                "name": "digits",
            },
            "keys_file": str(tmp_path / "keys.json"),
            "audit": {"path": str(tmp_path / "audit.sqlite")},
        }
    )
    tokens, _ = make_keys(tmp_path / "keys.json", {"p": "predict"})
    client = TestClient(create_app(settings, target=digits_cnn_target))
    x = digits.x_test[:4]
    with torch.no_grad():
        expected = torch.softmax(digits_cnn_target._torch_module()(x), 1).numpy()
    body = {"inputs": [{"name": "x", "shape": [4, 1, 8, 8], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
    r = client.post("/v2/models/digits/infer", json=body, headers={"X-API-Key": tokens["p"]})
    assert r.status_code == 200
    probs = np.asarray(r.json()["outputs"][0]["data"]).reshape(4, 10)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    # The clip range [0, 1] of the model is the default value range.
    body["inputs"][0]["data"][0] = 1.5
    r = client.post("/v2/models/digits/infer", json=body, headers={"X-API-Key": tokens["p"]})
    assert r.status_code == 422 and r.json()["rule"] == "value_range"
    flat = {"inputs": x.reshape(4, -1).tolist()}
    r = client.post("/predict", json=flat, headers={"X-API-Key": tokens["p"]})
    assert r.status_code == 422 and r.json()["rule"] == "shape"
