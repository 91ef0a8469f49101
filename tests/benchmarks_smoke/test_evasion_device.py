"""The evasion benchmark's device plumbing (benchmarks/evasion): device resolution, the large CNN, training on
the chosen device, the CUDA-aware clock and the results file's read-modify-write (GPU figures under "gpu", the
CPU keys untouched). The attacks themselves need ART and torchattacks (benchmarks/.venv): that test skips
without them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

EVASION = Path(__file__).resolve().parents[2] / "benchmarks" / "evasion"


def _load(name: str) -> ModuleType:
    if not (EVASION / f"{name}.py").is_file():
        pytest.skip(f"benchmarks/evasion/{name}.py is absent")
    sys.path.insert(0, str(EVASION))  # blackbox.py imports whitebox by name
    try:
        spec = importlib.util.spec_from_file_location(f"evasion_device_{name}", EVASION / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(EVASION))
    return mod


@pytest.fixture(scope="module")
def wb() -> ModuleType:
    return _load("whitebox")


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    return _load("run")


def test_resolve_device(wb: ModuleType) -> None:
    assert wb.resolve("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert wb.resolve("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            wb.resolve("cuda")


def test_large_cnn_is_added_without_changing_the_others(wb: ModuleType) -> None:
    small, large = wb.models(), wb.models(large=True)
    assert set(small) == {"mlp", "cnn"} and set(large) == {"mlp", "cnn", "cnn_large"}
    for name in small:  # the seeded weights of the CPU protocol's models stay the same
        for a, b in zip(small[name].parameters(), large[name].parameters(), strict=True):
            assert torch.equal(a, b)
    net = large["cnn_large"]
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert sum(p.numel() for p in net.parameters()) > 3 * sum(p.numel() for p in small["cnn"].parameters())


def test_train_moves_the_model_to_the_data_device(wb: ModuleType) -> None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=gen).to(dev), torch.randint(0, 10, (64,), generator=gen).to(dev)
    model = wb.train(wb.models()["mlp"], x, y, epochs=1)
    assert wb.device_of(model).type == dev.type
    back = wb.from_numpy(wb.to_numpy(x), x)
    assert back.device == x.device and torch.equal(back, x)
    t0 = wb.clock()
    assert wb.clock() >= t0


def test_gpu_results_merge_beside_the_cpu_ones(runner: ModuleType, tmp_path: Path) -> None:
    dest = tmp_path / "evasion.json"
    cpu = {"command": "cpu run", "whitebox": {"models": {"mlp": {"clean_accuracy": 0.97}}}, "goals": {}}
    dest.write_text(json.dumps(cpu))
    gpu1 = {"command": "gpu run 1", "whitebox": {"models": {"cnn_large": {"clean_accuracy": 0.99}}}}
    gpu2 = {"command": "gpu run 2", "whitebox": {"models": {"mlp": {"clean_accuracy": 0.98}}}}
    runner.write_results(dest, gpu1, gpu=True, partial=True)
    new = runner.write_results(dest, gpu2, gpu=True, partial=True)
    assert {k: v for k, v in new.items() if k != "gpu"} == cpu  # the CPU keys untouched
    assert set(new["gpu"]["whitebox"]["models"]) == {"cnn_large", "mlp"}  # the two GPU runs merged
    assert new["gpu"]["command"] == "gpu run 2" and "goals" in new["gpu"]
    # a full CPU run rewrites its own keys and keeps the GPU figures
    again = runner.write_results(dest, {"command": "cpu run 2", "goals": {}}, gpu=False, partial=False)
    assert again["command"] == "cpu run 2" and "whitebox" not in again and again["gpu"] == new["gpu"]
    assert json.loads(dest.read_text()) == again


@pytest.mark.skipif(
    importlib.util.find_spec("torchattacks") is None or importlib.util.find_spec("art") is None,
    reason="needs the peers (ART, torchattacks) of benchmarks/.venv",
)
def test_deepfool_row_runs_on_the_chosen_device(wb: ModuleType) -> None:
    from aisec.data import load_digits

    dev = wb.resolve("auto")
    data = load_digits()
    x, y = data.x_test[:10].to(dev), data.y_test[:10].to(dev)
    model = wb.train(wb.models()["mlp"], data.x_train.to(dev), data.y_train.to(dev), epochs=2)
    row = wb.deepfool_row(model, data, x, y)
    assert row["n"] == 10 and row["aisec"]["seconds"] > 0 and row["art"]["seconds"] > 0
