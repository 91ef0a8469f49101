"""Transfer: a surrogate trained on the target's labels mimics it, and its adversarials transfer."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.integrity.transfer import Transfer, TransferConfig, make_surrogate, transfer_from
from aisec.errors import BudgetExceededError, ConfigError


def test_queries_are_the_pool_labels_plus_two_per_attacked_input(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("grey-box", "labels")
    f = Transfer(n_samples=50, pool_size=200, epochs=5, surrogate="mlp").run(view, digits)
    assert f.metrics["pool_size"] == 200 and f.metrics["n"] == 50
    assert f.queries == view.queries == 200 + 2 * 50


def test_a_limited_budget_shrinks_the_pool_and_is_never_exceeded(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("grey-box", "labels", budget=300)
    f = Transfer(n_samples=100, epochs=5, surrogate="mlp").run(view, digits)
    assert f.queries <= 300
    assert f.metrics["n"] == 75 and f.metrics["pool_size"] == 150
    with pytest.raises(BudgetExceededError):
        Transfer().run(digits_cnn_target.view("grey-box", "labels", budget=Transfer.min_queries - 1), digits)


def test_the_surrogate_mimics_the_target_and_its_adversarials_transfer(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    # measured with the MLP surrogate, seeds 0-2: agreement 0.92-0.97; transfer rate 0.04-0.09 at eps 0.05,
    # 0.97-0.99 at eps 0.3 (the default CNN surrogate: agreement 0.92-0.99, transfer 0.17-0.29 at eps 0.1)
    weak, strong = (
        Transfer(eps=eps, surrogate="mlp").run(digits_cnn_target.view("grey-box", "labels"), digits).metrics
        for eps in (0.05, 0.3)
    )
    assert weak["surrogate_agreement"] > 0.85
    assert strong["transfer_rate"] > weak["transfer_rate"] + 0.5
    assert strong["robust_accuracy"] < strong["clean_accuracy"] - 0.5


def test_the_target_as_its_own_surrogate_transfers_everything_it_breaks(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    model = digits_cnn_target.view("white-box", "probabilities").model
    x, y = digits.x_test[:100], digits.y_test[:100]
    view = digits_cnn_target.view("black-box", "labels")
    m = transfer_from(model, view, x, y, eps=0.1, generator=torch.Generator().manual_seed(0))
    assert m["surrogate_agreement"] == 1.0
    assert m["transfer_rate"] == pytest.approx(m["surrogate_success_rate"])
    assert m["transfer_rate_of_surrogate_successes"] == 1.0
    assert view.queries == 200


def test_tabular_targets_get_an_mlp_surrogate(cancer_mlp_target, cancer) -> None:  # type: ignore[no-untyped-def]
    # measured: 0.97 -> 0.51 at eps 0.5 (agreement 0.96)
    m = Transfer(eps=0.5).run(cancer_mlp_target.view("grey-box", "labels"), cancer).metrics
    assert m["surrogate_agreement"] > 0.85
    assert m["robust_accuracy"] < m["clean_accuracy"] - 0.2


def test_a_cnn_surrogate_needs_images() -> None:
    with pytest.raises(ConfigError, match="cnn"):
        make_surrogate("cnn", (30,), 2)
    assert isinstance(make_surrogate("auto", (1, 8, 8), 10)[0], torch.nn.Conv2d)


@pytest.mark.parametrize(
    "bad",
    [{"eps": -0.1}, {"norm": "l1"}, {"steps": 0}, {"surrogate": "resnet"}, {"epochs": 0}, {"pool_size": 0},
     {"n_samples": 0}],
)  # fmt: skip
def test_config_rejects_invalid_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        TransferConfig(**bad)
