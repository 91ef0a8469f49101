"""On a CUDA machine, targets and attacks run on the GPU and agree with the CPU."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.integrity.fgsm import FGSM
from aisec.data import load_digits
from aisec.demo import DigitsCNN, train_classifier
from aisec.targets import TorchTarget

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_fgsm_on_cuda_matches_cpu() -> None:
    data = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsCNN(), data, epochs=2, lr=3e-3, batch_size=64, seed=0)
    results = {}
    for device in ("cpu", "cuda"):
        target = TorchTarget(model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device=device)
        view = target.view("white-box", "probabilities")
        assert view.model(torch.zeros(1, 1, 8, 8, device=device)).device.type == device
        results[device] = FGSM(eps=0.1, n_samples=None).run(view, data).metrics
    assert results["cuda"]["clean_accuracy"] == pytest.approx(results["cpu"]["clean_accuracy"], abs=1e-3)
    assert results["cuda"]["robust_accuracy"] == pytest.approx(results["cpu"]["robust_accuracy"], abs=0.01)


def test_pgd_on_cuda_checks_sparsely_and_breaks_what_the_cpu_breaks() -> None:
    """On CUDA PGD reads which rows broke every steps // 4 steps, not each step (no device sync in between);
    without refills it must break the inputs the CPU's every-step checks break (up to float noise)."""
    from aisec.attacks.integrity.pgd import pgd_attack

    data = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsCNN(), data, epochs=2, lr=3e-3, batch_size=64, seed=0).eval()
    x, y = data.x_test[:300], data.y_test[:300]
    reached = {}
    for device in ("cpu", "cuda"):
        m = model.to(device)
        _, hit = pgd_attack(
            m, x.to(device), y.to(device), eps=0.1, steps=20, clip=(0.0, 1.0),
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        reached[device] = hit.cpu()
    assert 0 < int(reached["cpu"].sum()) < len(y)
    assert int((reached["cpu"] != reached["cuda"]).sum()) <= 3
