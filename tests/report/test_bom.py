"""``aisec bom``: a CycloneDX ML-BOM of a run folder or a spec, valid against the CycloneDX schema."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console

from aisec.assess.runner import RunResult
from aisec.errors import ConfigError

pytest.importorskip("cyclonedx", reason="cyclonedx-python-lib is not installed (pip install 'aisec[bom]')")

from aisec.cli.report_cmd import bom_command
from aisec.data import load_breast_cancer
from aisec.report.bom import build_bom, dataset_sha256, validate_bom, write_bom


@pytest.fixture(scope="module")
def run_bom(real_run: RunResult) -> dict[str, Any]:
    return build_bom(real_run.run_dir)


def _components(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["bom-ref"]: c for c in doc["components"]}


def test_run_bom_is_valid_cyclonedx(run_bom: dict[str, Any]) -> None:
    assert run_bom["bomFormat"] == "CycloneDX" and run_bom["specVersion"] == "1.6"
    assert validate_bom(run_bom) == []
    # the validator is strict: a model card with a wrong type, or an unknown field, is an error
    broken = json.loads(json.dumps(run_bom))
    broken["metadata"]["component"]["modelCard"]["modelParameters"]["task"] = 5
    broken["metadata"]["component"]["modelCard"]["notAField"] = True
    assert len(validate_bom(broken)) >= 2


def test_model_card_from_the_run(run_bom: dict[str, Any], real_run: RunResult) -> None:
    model = run_bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "cancer-mlp"
    params = model["modelCard"]["modelParameters"]
    assert params["task"] == "classification"
    assert "(30,)" in params["inputs"][0]["format"]
    assert "2 classes" in params["outputs"][0]["format"]
    (dataset_ref,) = (d["ref"] for d in params["datasets"])
    assert _components(run_bom)[dataset_ref]["type"] == "data"
    metrics = model["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    for f in real_run.findings:  # every finding's headline, with its value and job
        assert f.headline is not None
        (m,) = (m for m in metrics if m["slice"].startswith(f.job_id))
        assert m["type"] == f"{f.attack}: {f.headline}"
        assert float(m["value"]) == pytest.approx(f.metrics[f.headline], abs=1e-3)
    limits = model["modelCard"]["considerations"]["technicalLimitations"]
    assert any(line.startswith("availability: not assessed") for line in limits)
    # the model and its data are in the dependency graph
    deps = {d["ref"]: d.get("dependsOn", []) for d in run_bom["dependencies"]}
    assert dataset_ref in deps[model["bom-ref"]]


def test_dataset_hash_is_a_content_hash(run_bom: dict[str, Any]) -> None:
    (data,) = (c for c in run_bom["components"] if c["type"] == "data")
    (digest,) = (h["content"] for h in data["hashes"] if h["alg"] == "SHA-256")
    assert digest == dataset_sha256(load_breast_cancer(seed=0))
    assert digest != dataset_sha256(load_breast_cancer(seed=1))  # another split is other content


def test_python_dependencies_with_installed_versions(run_bom: dict[str, Any]) -> None:
    libs = {c["name"].lower(): c for c in run_bom["components"] if c["type"] == "library"}
    for name in ("torch", "numpy", "scikit-learn", "pydantic", "aisec"):
        assert libs[name]["version"] == md.version(name)
        assert libs[name]["purl"] == f"pkg:pypi/{name}@{md.version(name)}".replace("+", "%2B")
    assert "torch" in json.dumps(
        next(d for d in run_bom["dependencies"] if d["ref"] == run_bom["metadata"]["component"]["bom-ref"])
    )


def test_bom_of_a_spec_hashes_the_files(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really a model, but bytes to hash")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "points.npz", x=rng.normal(size=(40, 5)).astype(np.float32), y=np.arange(40) % 2)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "bom-spec",
                "target": {"kind": "onnx", "path": "model.onnx"},
                "data": {"kind": "npz", "path": "points.npz"},
                "threat_model": {"needs": {"integrity": "normal"}},
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out" / "bom.json"
    console = Console(record=True, width=200)
    assert bom_command(spec, out, console=console) == 0
    assert f"wrote {out}" in console.export_text()
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert validate_bom(doc) == []
    comp = doc["metadata"]["component"]
    assert comp["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(model.read_bytes()).hexdigest()}]
    assert "quantitativeAnalysis" not in comp["modelCard"]  # no run, no measured metrics
    (data,) = (c for c in doc["components"] if c["type"] == "data")
    props = {p["name"]: p["value"] for p in data["properties"]}
    assert props["aisec:data.file_sha256"] == hashlib.sha256((tmp_path / "points.npz").read_bytes()).hexdigest()
    onnx_runtime = [d for d in doc["dependencies"] if d["ref"] == comp["bom-ref"]]
    assert onnx_runtime and onnx_runtime[0]["dependsOn"][0] == data["bom-ref"]


def test_write_bom_defaults_into_the_run_folder(real_run: RunResult, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(real_run.run_dir, run_dir)
    path = write_bom(run_dir)
    assert path == run_dir / "bom.json"
    assert validate_bom(path.read_text(encoding="utf-8")) == []


def test_not_a_run_folder_nor_a_spec(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        build_bom(tmp_path)
    with pytest.raises(ConfigError, match="neither a run folder nor a spec file"):
        build_bom(tmp_path / "missing.yaml")
