"""Formats and containers: PyTorch zips, joblib (compressed too), NumPy, ONNX, Keras, archives."""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from torch import nn

from aisec.scan import ScanLimits, scan_path
from aisec.scan.formats import HDF5_MAGIC, onnx_locations_heuristic
from aisec.scan.results import FileResult, ScanReport
from tests.scan.conftest import tiny_sequential
from tests.scan.corpus import FAMILIES, Reduce, rewrite_zip_member


class CustomNet(nn.Module):
    """A user's own module class: not on the allowlist."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def _only(report: ScanReport) -> FileResult:
    assert len(report.files) == 1, [f.path for f in report.files]
    return report.files[0]


def _payload(marker: Path) -> Reduce:
    return Reduce(os.system, f"touch {marker}")


# -- benign files ----------------------------------------------------------------------------


def test_benign_corpus_is_safe(benign_dir: Path) -> None:
    report = scan_path(benign_dir)
    unsafe = {f.path: [i.message for i in f.issues] for f in report.files if f.rating != "safe"}
    assert not unsafe
    formats = {Path(f.path).name: f.format for f in report.files}
    assert formats["state_dict.pt"] == formats["sequential.pt"] == "pytorch-zip"
    assert formats["legacy.pth"] == "pytorch-legacy"
    assert formats["scripted.pt"] == "torchscript"
    assert formats["pipeline.joblib"] == formats["mixed.joblib"] == "joblib"
    for compress in ("zlib", "gzip", "bz2", "lzma", "xz"):
        assert formats[f"pipeline.{compress}.joblib"] == f"joblib+{compress}"
    assert formats["pipeline.p0.pkl"] == formats["pipeline.p5.pkl"] == "pickle"
    assert formats["floats.npy"] == formats["strings.npy"] == "npy"
    assert formats["arrays.npz"] == formats["compressed.npz"] == "npz"
    assert formats["weights.safetensors"] == "safetensors"
    assert {Path(p).name for p in report.skipped} == {"README.md", "config.json"}
    assert len(report.files) == 23
    sklearn_globals = next(f for f in report.files if f.path.endswith("pipeline.joblib")).globals
    assert "sklearn.feature_extraction.text.TfidfVectorizer" in sklearn_globals
    assert all(len(f.sha256) == 64 for f in report.files)


def test_custom_module_class_is_suspicious_not_dangerous(tmp_path: Path) -> None:
    torch.save(CustomNet(), tmp_path / "custom.pt")
    result = _only(scan_path(tmp_path / "custom.pt"))
    assert result.rating == "suspicious"
    assert [i.global_name for i in result.issues] == [f"{__name__}.CustomNet"]
    assert result.issues[0].member.endswith("data.pkl")


# -- malicious files -------------------------------------------------------------------------


def test_pytorch_zip_with_rewritten_data_pkl(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(tiny_sequential().state_dict(), path)
    member = rewrite_zip_member(path, "data.pkl", pickle.dumps(_payload(tmp_path / "M"), protocol=2))
    with pytest.raises(pickle.UnpicklingError):  # torch's own restricted loader refuses it too
        torch.load(path, weights_only=True)
    result = _only(scan_path(path))
    assert result.format == "pytorch-zip" and result.rating == "dangerous"
    issue = next(i for i in result.issues if i.rule == "os-command")
    assert issue.member == member and issue.offset == 2
    assert not (tmp_path / "M").exists()


def test_pytorch_zip_with_an_extra_pickle_member(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(tiny_sequential().state_dict(), path)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("model/extra.bin", pickle.dumps(_payload(tmp_path / "M"), protocol=4))
    result = _only(scan_path(path))
    assert result.rating == "dangerous"
    assert {i.member for i in result.issues} == {"model/extra.bin"}


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_joblib_with_payload_inside_object_array(tmp_path: Path, compress) -> None:
    path = tmp_path / "model.joblib"
    obj = {"w": np.ones((4, 4)), "meta": np.array(["x", _payload(tmp_path / "M")], dtype=object), "b": np.zeros(3)}
    joblib.dump(obj, path, compress=compress)
    result = _only(scan_path(path))
    assert result.rating == "dangerous", [i.message for i in result.issues]
    assert result.format.startswith("joblib")
    assert not (tmp_path / "M").exists()


def test_numpy_object_arrays(tmp_path: Path) -> None:
    evil = np.array([1, _payload(tmp_path / "M")], dtype=object)
    np.save(tmp_path / "evil.npy", evil, allow_pickle=True)
    np.savez(tmp_path / "evil.npz", ok=np.zeros(2), bad=evil)
    report = scan_path(tmp_path)
    ratings = {Path(f.path).name: f.rating for f in report.files}
    assert ratings == {"evil.npy": "dangerous", "evil.npz": "dangerous"}
    npz = next(f for f in report.files if f.path.endswith(".npz"))
    assert {i.member for i in npz.issues if i.rating == "dangerous"} == {"bad.npy"}


def test_pickle_disguised_by_extension(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(_payload(tmp_path / "M")))
    (tmp_path / "weights.npy").write_bytes(pickle.dumps([1.0, 2.0]))
    (tmp_path / "notes.txt").write_bytes(pickle.dumps({"a": 1}, protocol=0))
    (tmp_path / "model.pt").write_bytes(os.urandom(256))
    report = scan_path(tmp_path)
    by_name = {Path(f.path).name: f for f in report.files}
    assert by_name["model.safetensors"].rating == "dangerous"
    for name in ("model.safetensors", "weights.npy", "notes.txt", "model.pt"):
        assert "extension-mismatch" in {i.rule for i in by_name[name].issues}, name
    assert by_name["weights.npy"].rating == by_name["notes.txt"].rating == by_name["model.pt"].rating == "suspicious"


def test_archives_are_scanned_member_by_member(tmp_path: Path, benign_dir: Path) -> None:
    evil = pickle.dumps(_payload(tmp_path / "M"), protocol=4)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deep/evil.pkl", evil)
        zf.write(benign_dir / "pipeline.joblib", "deep/pipeline.joblib")
    with tarfile.open(tmp_path / "bundle.tar.gz", "w:gz") as tf:
        tf.add(benign_dir / "state_dict.pt", "models/state_dict.pt")
        info = tarfile.TarInfo("models/inner.zip")
        info.size = len(inner.getvalue())
        tf.addfile(info, io.BytesIO(inner.getvalue()))
    report = scan_path(tmp_path / "bundle.tar.gz")
    ratings = {f.path.split("!", 1)[1]: f.rating for f in report.files}
    assert ratings == {
        "models/state_dict.pt": "safe",
        "models/inner.zip!deep/evil.pkl": "dangerous",
        "models/inner.zip!deep/pipeline.joblib": "safe",
    }


def test_scan_limits(tmp_path: Path, benign_dir: Path) -> None:
    small = ScanLimits(max_decompressed_bytes=200)
    result = _only(scan_path(benign_dir / "pipeline.gzip.joblib", limits=small))
    assert result.rating == "suspicious" and "scan-limit" in {i.rule for i in result.issues}
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as zf:
        zf.writestr("x.pkl", pickle.dumps(1))
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as zf:
        zf.writestr("inner.zip", nested.getvalue())
    report = scan_path(tmp_path / "outer.zip", limits=ScanLimits(max_depth=1))
    assert [(f.path, f.rating) for f in report.files] == [(f"{tmp_path / 'outer.zip'}!inner.zip", "suspicious")]


def test_nothing_is_executed_or_loaded(tmp_path: Path, benign_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "MARKER"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, family in enumerate(FAMILIES):
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            (corpus / f"{i}_{protocol}.pkl").write_bytes(pickle.dumps(family.make(marker), protocol=protocol))
    joblib.dump(np.array([_payload(marker)], dtype=object), corpus / "evil.joblib", compress=3)

    def refuse(*args, **kwargs):
        raise AssertionError("the scanner must not load anything")

    for owner, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(owner, name, refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    monkeypatch.setattr(np, "load", refuse)
    report = scan_path(corpus)
    assert report.counts["dangerous"] == len(FAMILIES) * (pickle.HIGHEST_PROTOCOL + 1) + 1
    assert not marker.exists()
    assert (tmp_path / "victim").is_dir()  # shutil.rmtree did not run either
    monkeypatch.undo()
    pickle.loads((corpus / "0_2.pkl").read_bytes())  # control: loading it does run the payload
    assert marker.exists()


# -- onnx and keras --------------------------------------------------------------------------


def _onnx_model(location: str | None) -> bytes:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    weight = numpy_helper.from_array(np.ones(2, dtype=np.float32), "W")
    if location is not None:
        weight.ClearField("raw_data")
        weight.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "8")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
    node = helper.make_node("Add", ["X", "W"], ["Y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [2])],
        [weight],
    )
    return helper.make_model(graph).SerializeToString()


@pytest.mark.parametrize(
    ("location", "rating"),
    [(None, "safe"), ("weights.bin", "safe"), ("../../etc/passwd", "dangerous"), ("/etc/passwd", "dangerous")],
)
def test_onnx_external_data(tmp_path: Path, location: str | None, rating: str) -> None:
    (tmp_path / "model.onnx").write_bytes(_onnx_model(location))
    result = _only(scan_path(tmp_path / "model.onnx"))
    assert result.format == "onnx" and result.rating == rating
    if rating == "dangerous":
        assert result.issues[0].rule == "onnx-external-data" and location in result.issues[0].message


def test_onnx_without_the_onnx_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _onnx_model("../secret.bin")
    assert onnx_locations_heuristic(data) == [("?", "../secret.bin")]
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    (tmp_path / "m.onnx").write_bytes(data)
    assert _only(scan_path(tmp_path / "m.onnx")).rating == "dangerous"


def _keras_config(lambda_layer: bool) -> dict:
    layers = [{"class_name": "Dense", "config": {"name": "dense", "units": 2}}]
    if lambda_layer:
        layers.append({"class_name": "Lambda", "config": {"name": "sneaky", "function": {"class_name": "__lambda__"}}})
    return {"class_name": "Sequential", "config": {"name": "seq", "layers": layers}}


@pytest.mark.parametrize("lambda_layer", [False, True])
def test_keras_formats(tmp_path: Path, lambda_layer: bool) -> None:
    config = json.dumps(_keras_config(lambda_layer)).encode()
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as zf:
        zf.writestr("config.json", config)
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", HDF5_MAGIC)
    h5 = HDF5_MAGIC + bytes(3000) + b"model_config\x00" + json.dumps(_keras_config(lambda_layer), indent=1).encode()
    (tmp_path / "model.h5").write_bytes(h5 + bytes(100))
    (tmp_path / "config.json").write_bytes(config)
    report = scan_path(tmp_path)
    formats = {Path(f.path).name: (f.format, f.rating) for f in report.files}
    expected = "dangerous" if lambda_layer else "safe"
    assert formats == {
        "model.keras": ("keras", expected),
        "model.h5": ("hdf5", expected),
        "config.json": ("keras-config", expected),
    }
    if lambda_layer:
        assert all("'sneaky'" in f.issues[0].message for f in report.files)
        h5_issue = next(f for f in report.files if f.format == "hdf5").issues[0]
        assert h5[h5_issue.offset :].startswith(b'"class_name"')
