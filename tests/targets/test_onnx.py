"""OnnxTarget on graphs built with ``onnx.helper`` from a fitted scikit-learn LogisticRegression."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aisec.core.config import TargetSpec
from aisec.core.goals import Capability
from aisec.data import Dataset, load_breast_cancer
from aisec.errors import ConfigError, InputValidationError, MissingDependencyError, UnsupportedTargetError
from aisec.targets import load_target
from aisec.targets.onnx import OnnxTarget

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_breast_cancer(seed=0)


@pytest.fixture(scope="module")
def model(data: Dataset) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(data.x_train.numpy().astype(np.float64), data.y_train.numpy())


def build_graph(model: LogisticRegression, *, softmax: bool, batch: int | str = "N") -> onnx.ModelProto:
    """Binary logistic regression as two-class logits: softmax([-z/2, z/2]) = [1 - sigmoid(z), sigmoid(z)]."""
    coef, bias = model.coef_[0], float(model.intercept_[0])
    weights = np.stack([-coef / 2, coef / 2], axis=1).astype(np.float32)  # (30, 2)
    offsets = np.array([-bias / 2, bias / 2], dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["logits"])]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        out = "probs"
    graph = helper.make_graph(
        nodes,
        "logreg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 30])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, 2])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(offsets, "B")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    onnx.checker.check_model(proto)
    return proto


def save(proto: onnx.ModelProto, path: Path) -> Path:
    onnx.save(proto, str(path))
    return path


def sk_proba(model: LogisticRegression, x: torch.Tensor) -> np.ndarray:
    return model.predict_proba(x.numpy().astype(np.float64))


def test_logits_graph_matches_sklearn(tmp_path: Path, model: LogisticRegression, data: Dataset) -> None:
    path = save(build_graph(model, softmax=False), tmp_path / "logreg.onnx")
    target = OnnxTarget.from_file(path, modality="tabular", input_shape=(30,), outputs="logits", batch_size=16)
    assert target.n_classes == 2  # read from the graph
    assert target.name == "logreg"
    view = target.view("black-box", "probabilities", budget=1000)
    probs = view.predict_proba(data.x_test)
    assert probs.dtype == torch.float32 and probs.shape == (len(data.x_test), 2)
    np.testing.assert_allclose(probs.numpy(), sk_proba(model, data.x_test), atol=1e-5)
    assert torch.equal(view.predict(data.x_test), torch.from_numpy(model.predict(data.x_test.numpy().astype(float))))
    assert view.queries == 2 * len(data.x_test)


def test_outputs_flag_decides_whether_softmax_is_applied(
    tmp_path: Path, model: LogisticRegression, data: Dataset
) -> None:
    path = save(build_graph(model, softmax=True), tmp_path / "probs.onnx")
    x = data.x_test[:40]
    right = OnnxTarget.from_file(path, modality="tabular", input_shape=(30,), outputs="probabilities")
    np.testing.assert_allclose(right._predict_proba(x).numpy(), sk_proba(model, x), atol=1e-5)
    # the same graph read as logits gets a second softmax: still rows of probabilities, but flattened
    wrong = OnnxTarget.from_file(path, modality="tabular", input_shape=(30,), outputs="logits")
    squashed = wrong._predict_proba(x).numpy()
    np.testing.assert_allclose(squashed.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(squashed, sk_proba(model, x), atol=1e-2)
    assert np.abs(squashed - 0.5).max() < 0.27  # softmax of values in [0, 1] stays within [0.27, 0.73]


def test_session_and_model_proto_and_fixed_batch(model: LogisticRegression, data: Dataset) -> None:
    proto = build_graph(model, softmax=False)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = data.x_test[:7]
    for source in (session, proto, proto.SerializeToString()):
        target = OnnxTarget(source, modality="tabular", input_shape=(30,))
        np.testing.assert_allclose(target._predict_proba(x).numpy(), sk_proba(model, x), atol=1e-5)
    fixed = OnnxTarget(build_graph(model, softmax=False, batch=1), modality="tabular", input_shape=(30,))
    np.testing.assert_allclose(fixed._predict_proba(x).numpy(), sk_proba(model, x), atol=1e-5)


def test_no_gradients_even_for_a_white_box_attacker(model: LogisticRegression, data: Dataset) -> None:
    target = OnnxTarget(build_graph(model, softmax=False), modality="tabular", input_shape=(30,))
    assert Capability.GRADIENTS not in target.capabilities
    view = target.view("white-box", "probabilities")
    with pytest.raises(UnsupportedTargetError, match="gradients"):
        _ = view.model
    assert view.predict_proba(data.x_test[:3]).shape == (3, 2)


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        OnnxTarget.from_file(tmp_path / "absent.onnx", modality="tabular", input_shape=(30,))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf\n" * 10)
    with pytest.raises(ConfigError, match="not a valid ONNX model") as info:
        OnnxTarget.from_file(bad, modality="tabular", input_shape=(30,))
    assert "\n" not in str(info.value)


def test_wrong_configuration_is_refused(model: LogisticRegression) -> None:
    proto = build_graph(model, softmax=False)
    with pytest.raises(ConfigError, match="text"):
        OnnxTarget(proto, modality="text", input_shape=(30,))
    with pytest.raises(ConfigError, match="input_shape"):
        OnnxTarget(proto, modality="tabular", input_shape=(29,))
    with pytest.raises(ConfigError, match="n_classes"):
        OnnxTarget(proto, modality="tabular", input_shape=(30,), n_classes=3)
    with pytest.raises(ConfigError, match="outputs"):
        OnnxTarget(proto, modality="tabular", input_shape=(30,), outputs="scores")  # type: ignore[arg-type]
    target = OnnxTarget(proto, modality="tabular", input_shape=(30,))
    with pytest.raises(InputValidationError, match="shape"):
        target.view("black-box", "labels").predict(torch.zeros(2, 31))


def test_missing_onnxruntime_names_the_extra(monkeypatch: pytest.MonkeyPatch, model: LogisticRegression) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"aisec\[onnx\]"):
        OnnxTarget(build_graph(model, softmax=False), modality="tabular", input_shape=(30,))


def test_load_target_builds_an_onnx_target(tmp_path: Path, model: LogisticRegression, data: Dataset) -> None:
    path = save(build_graph(model, softmax=True), tmp_path / "cancer.onnx")
    target = load_target(TargetSpec(kind="onnx", path=str(path), outputs="probabilities"), data)
    assert isinstance(target, OnnxTarget) and target.input_shape == (30,) and target.n_classes == 2
    x = data.x_test[:20]
    probs = target.view("black-box", "probabilities", budget=20).predict_proba(x)
    np.testing.assert_allclose(probs.numpy(), sk_proba(model, x), atol=1e-5)
