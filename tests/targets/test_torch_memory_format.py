"""TorchTarget runs CNNs channels-last on the CPU: same answers, the user's module untouched, a safe fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from aisec.data.dataset import Dataset
from aisec.errors import ConfigError
from aisec.targets import TorchTarget


class _ViewFlatten(nn.Module):
    """A CNN that flattens with ``.view``, which fails on a channels-last tensor."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.head = nn.Conv2d(1, 8, 3, padding=1), nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).relu()
        return self.head(h.view(h.shape[0], -1))


def _target(model: nn.Module, **kwargs: object) -> TorchTarget:
    return TorchTarget(model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu", **kwargs)  # type: ignore[arg-type]


def test_a_cnn_on_the_cpu_runs_channels_last_with_the_same_answers(digits_cnn: nn.Module, digits: Dataset) -> None:
    before = {k: (v.clone(), v.stride()) for k, v in digits_cnn.state_dict().items()}
    rng = torch.random.get_rng_state()
    target = _target(digits_cnn)
    assert target.memory_format == "channels_last"
    assert torch.equal(torch.random.get_rng_state(), rng)  # the probe batch draws from its own generator
    for k, v in digits_cnn.state_dict().items():  # the user's module is neither converted nor changed
        assert torch.equal(v, before[k][0]) and v.stride() == before[k][1]
    view = target.view("black-box", "probabilities")
    x = digits.x_test
    with torch.no_grad():
        expected = digits_cnn(x).softmax(1)
    assert torch.equal(view.predict(x), expected.argmax(1))
    assert torch.allclose(view.predict_proba(x), expected, atol=1e-5)
    assert view.queries == 2 * len(x)
    assert target.view("white-box", "labels").parameters is digits_cnn


def test_white_box_gradients_are_the_same_in_both_layouts(digits_cnn: nn.Module, digits: Dataset) -> None:
    grads = []
    for fmt in ("channels_last", "contiguous"):
        view = _target(digits_cnn, memory_format=fmt).view("white-box", "probabilities")
        x = digits.x_test[:64].clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(view.model(x), digits.y_test[:64])
        grads.append(torch.autograd.grad(loss, x)[0])
        assert view.forward_passes == 64
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_contiguous_runs_the_users_module(digits_cnn: nn.Module, digits: Dataset) -> None:
    calls: list[int] = []
    handle = digits_cnn.register_forward_pre_hook(lambda m, args: calls.append(len(args[0])))
    try:
        target = _target(digits_cnn, memory_format="contiguous", n_classes=10)
        assert target.memory_format == "contiguous"
        target.view("black-box", "labels").predict(digits.x_test[:7])
    finally:
        handle.remove()
    assert calls == [7]


def test_auto_keeps_the_default_layout_where_channels_last_does_not_apply(
    cancer_mlp: nn.Module, digits: Dataset
) -> None:
    tabular = TorchTarget(cancer_mlp, input_shape=(30,), modality="tabular", device="cpu")
    assert tabular.memory_format == "contiguous"
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert _target(mlp).memory_format == "contiguous"  # no convolution: nothing to gain
    with pytest.raises(ConfigError, match="image inputs"):
        TorchTarget(cancer_mlp, input_shape=(30,), modality="tabular", device="cpu", memory_format="channels_last")
    with pytest.raises(ConfigError, match="memory_format"):
        _target(mlp, memory_format="nhwc")


def test_a_model_that_cannot_run_channels_last_falls_back(digits: Dataset) -> None:
    model = _ViewFlatten().eval()
    target = _target(model)
    assert target.memory_format == "contiguous"
    with torch.no_grad():
        expected = model(digits.x_test).argmax(1)
    assert torch.equal(target.view("black-box", "labels").predict(digits.x_test), expected)
    with pytest.raises(ConfigError, match="channels-last"):
        _target(model, memory_format="channels_last")


def test_a_traced_torchscript_file_runs_channels_last(digits_cnn: nn.Module, digits: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(digits_cnn, digits.x_test[:2]), str(path))
    target = TorchTarget.from_file(path, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    assert target.memory_format == "channels_last"
    with torch.no_grad():
        expected = digits_cnn(digits.x_test)
    assert torch.equal(target.view("black-box", "labels").predict(digits.x_test), expected.argmax(1))
    probs = target.view("black-box", "probabilities").predict_proba(digits.x_test)
    assert torch.allclose(probs, expected.softmax(1), atol=1e-5)


def test_a_spec_file_chooses_the_layout(digits_cnn: nn.Module, digits: Dataset, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from aisec.core.config import TargetSpec
    from aisec.targets import load_target

    path = tmp_path / "cnn.pt"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(digits_cnn, digits.x_test[:2]), str(path))
    chosen = {
        fmt: load_target(TargetSpec(kind="torch", path=str(path), device="cpu", memory_format=fmt), digits)
        for fmt in ("auto", "contiguous")
    }
    assert chosen["auto"].memory_format == "channels_last"  # type: ignore[attr-defined]
    assert chosen["contiguous"].memory_format == "contiguous"  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="memory_format applies to torch targets"):
        TargetSpec(kind="sklearn", path="model.joblib", memory_format="contiguous")
