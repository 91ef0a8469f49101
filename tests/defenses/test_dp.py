"""DP-SGD (aisec.defenses.training.dp): the accountant's epsilon, accuracy, the guarantee it carries."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from aisec.data import Dataset
from aisec.defenses.base import defenses, get_defense
from aisec.defenses.training import dp as _dp  # noqa: F401  (registers the defense until aisec.defenses imports it)
from aisec.defenses.training.dp import DPSGD, DPSGDConfig, dp_sgd
from aisec.errors import ConfigError, InputValidationError, MissingDependencyError
from tests.helpers import accuracy

pytest.importorskip("opacus")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def trained(digits: Dataset) -> dict[float, object]:
    """The same MLP trained with DP-SGD at epsilon 0.5 and 8 (10 epochs each, about 1 s)."""
    return {eps: dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=eps, epochs=10)) for eps in (0.5, 8.0)}


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_accountants_epsilon_is_at_most_the_target_and_close_to_it(digits: Dataset, accountant: str) -> None:
    res = dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=2.0, epochs=2, accountant=accountant))
    assert 1.8 <= res.epsilon <= 2.0
    assert res.info["epsilon"] == res.epsilon and res.info["accountant"] == accountant
    assert res.noise_multiplier > 0.5 and res.steps > 0 and res.seconds > 0


def test_a_dp_model_learns_and_more_budget_buys_accuracy(digits: Dataset, trained: dict) -> None:
    # measured (seeds 0-2): 0.92-0.93 at epsilon 8, 0.60-0.71 at epsilon 0.5
    acc = {eps: accuracy(r.model, digits.x_test, digits.y_test) for eps, r in trained.items()}
    assert acc[8.0] >= 0.85
    assert acc[0.5] < acc[8.0] - 0.1


def test_the_model_given_is_unchanged_and_the_result_carries_its_guarantee(digits: Dataset, trained: dict) -> None:
    net = _mlp()
    before = [p.detach().clone() for p in net.parameters()]
    res = DPSGD(epsilon=8.0, epochs=1, public=None).apply(net, digits)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    out = res.model
    assert type(out) is nn.Sequential and not out.training  # the user's architecture, Opacus's wrapper gone
    assert not any(p.requires_grad for p in out.parameters())
    assert out.dp_guarantee["epsilon"] == res.info["epsilon"] <= 8.0
    assert out.dp_guarantee["delta"] == 1e-5
    assert {"noise_multiplier", "max_grad_norm", "epochs", "seconds"} <= set(res.info)
    assert not any(torch.equal(a, b) for a, b in zip(before, out.parameters(), strict=True))  # re-initialised


def test_tanh_is_an_option_that_swaps_relus(digits: Dataset) -> None:
    res = dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=8.0, epochs=1, activation="tanh"))
    kinds = [type(m) for m in res.model.modules()]
    assert nn.Tanh in kinds and nn.ReLU not in kinds


def _mlp3(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 10))


@pytest.mark.parametrize("engine", ["opacus", "aisec"])
def test_freeze_keeps_the_widest_hidden_layer_fixed_and_trains_the_rest(digits: Dataset, engine: str) -> None:
    net = _mlp3()
    # reinit off: compare with the given weights; RDP: a faster noise search than PRV (the accountant is not tested here)
    cfg = DPSGDConfig(epsilon=8.0, epochs=1, reinit=False, engine=engine, accountant="rdp")
    assert DPSGDConfig().freeze == "widest-hidden"  # the default
    res = dp_sgd(net, digits, cfg)
    before, after = dict(net.named_parameters()), dict(res.model.named_parameters())
    assert res.info["frozen"] == ["3"]  # the 32x48 layer: more weights than 64x32 (the first) and 48x10 (the last)
    assert torch.equal(after["3.weight"], before["3.weight"]) and torch.equal(after["3.bias"], before["3.bias"])
    assert not torch.equal(after["1.weight"], before["1.weight"])
    assert not torch.equal(after["5.weight"], before["5.weight"])
    assert res.info["trained_parameters"] == 64 * 32 + 32 + 48 * 10 + 10
    assert type(res.model) is nn.Sequential and res.epsilon <= 8.0


def test_freeze_none_trains_everything_and_two_layer_models_freeze_nothing(digits: Dataset) -> None:
    net = _mlp3()
    res = dp_sgd(net, digits, DPSGDConfig(epsilon=8.0, epochs=1, reinit=False, freeze="none", accountant="rdp"))
    assert res.info["frozen"] == [] and res.info["trained_parameters"] == sum(p.numel() for p in net.parameters())
    assert not torch.equal(res.model[3].weight, net[3].weight)
    small = dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=8.0, epochs=1, accountant="rdp"))
    assert small.info["frozen"] == [] and small.info["trained_parameters"] == 64 * 64 + 64 + 64 * 10 + 10


def test_a_frozen_random_layer_still_learns(digits: Dataset) -> None:
    # measured (seeds 0-2, 64-32-48-10, epsilon 8, 10 epochs): 0.89-0.91 frozen, 0.90-0.94 with freeze="none"
    res = dp_sgd(_mlp3(), digits, DPSGDConfig(public=None, epsilon=8.0, epochs=10))
    assert res.info["frozen"] == ["3"] and accuracy(res.model, digits.x_test, digits.y_test) >= 0.85


def test_an_unreachable_budget_and_bad_config_are_config_errors(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="cannot be reached"):
        # RDP: PRV finds a (huge) sigma
        dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=0.01, epochs=50, accountant="rdp"))
    bad_configs = ({"epsilon": 0}, {"delta": 1.0}, {"ema": 1.0}, {"accountant": "gdp"}, {"epochs": 1.5})
    bad_configs += ({"freeze": "all"},)
    for bad in bad_configs:
        with pytest.raises(ConfigError):
            DPSGDConfig(**bad)


def test_batch_norm_is_refused_naming_the_problem(digits: Dataset) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10))
    with pytest.raises(InputValidationError, match="BatchNorm"):
        dp_sgd(net, digits, DPSGDConfig(epochs=1))  # refused before any public data is loaded


def test_without_opacus_the_error_names_the_extra(digits: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)
    with pytest.raises(MissingDependencyError, match=r"aisec\[dp\]"):
        dp_sgd(_mlp(), digits)


def test_it_is_registered_as_a_training_defense() -> None:
    assert get_defense("dp-sgd") is DPSGD and "dp-sgd" in defenses()
    assert DPSGD.kind == "training" and "lira" in DPSGD.mitigates


# --- the functional engine (aisec.defenses.training.dp_functional) ---------------------------------------------


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Tanh(), nn.Linear(5, 10))


def _loop_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per-example gradients the slow way: one backward pass per example (x is (B, K, ...): mean over K copies)."""
    rows = []
    for xi, yi in zip(x, y, strict=True):
        net.zero_grad()
        nn.functional.cross_entropy(net(xi), yi.repeat(len(xi))).backward()
        rows.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    return rows


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # Opacus's hooks on inputs without gradients
def test_functional_per_example_gradients_equal_a_loop_and_opacus(digits: Dataset) -> None:
    from opacus import GradSampleModule

    from aisec.defenses.training.dp_functional import per_example_grads

    net, x, y = _tiny(), digits.x_train[:6], digits.y_train[:6]
    params = {k: p.detach() for k, p in net.named_parameters()}
    got = per_example_grads(net, params, x.unsqueeze(1), y)
    flat = torch.cat([g.flatten(1) for g in got.values()], 1)
    assert torch.allclose(flat, torch.stack(_loop_grads(net, x.unsqueeze(1), y)), atol=1e-6)
    gsm = GradSampleModule(_tiny(), loss_reduction="sum")
    nn.functional.cross_entropy(gsm(x), y, reduction="sum").backward()
    opacus_rows = torch.cat([p.grad_sample.flatten(1) for p in gsm.parameters()], 1)
    assert torch.allclose(flat, opacus_rows, atol=1e-5)
    copies = torch.stack([x, x.flip(-1), 0.5 * x], 1)  # (B, K=3, 1, 8, 8): the mean over the copies
    got3 = per_example_grads(net, params, copies, y)
    flat3 = torch.cat([g.flatten(1) for g in got3.values()], 1)
    assert torch.allclose(flat3, torch.stack(_loop_grads(net, copies, y)), atol=1e-6)


def test_augmentation_multiplicity_keeps_one_clipped_contribution_per_example(digits: Dataset) -> None:
    from aisec.defenses.training.dp_functional import augment_images, private_gradient

    net, gen = _tiny(), torch.Generator().manual_seed(0)
    params = {k: p.detach() for k, p in net.named_parameters()}
    x, y = digits.x_train[:5], digits.y_train[:5]
    aug = lambda xb: augment_images(xb, 8, shift=1, rotate_deg=10.0, gen=gen)  # noqa: E731
    assert aug(x).shape == (5, 8, 1, 8, 8)
    clip = 1e-3  # below every example's gradient norm: each contributes exactly norm `clip`
    for i in range(5):
        g, stats = private_gradient(
            net, params, x[i : i + 1], y[i : i + 1], max_norm=clip, noise_multiplier=0.0, expected_batch=1.0,
            gen=gen, augment=aug,
        )  # fmt: skip
        norm = torch.sqrt(sum(v.pow(2).sum() for v in g.values()))
        assert stats.median_norm > clip and norm == pytest.approx(clip, rel=1e-3)
    g, _ = private_gradient(
        net, params, x, y, max_norm=clip, noise_multiplier=0.0, expected_batch=1.0, gen=gen, augment=aug
    )
    assert torch.sqrt(sum(v.pow(2).sum() for v in g.values())) <= 5 * clip * (1 + 1e-4)  # 5 examples, 5 clips
    noisy, _ = private_gradient(
        net, params, x, y, max_norm=clip, noise_multiplier=10.0, expected_batch=1.0, gen=gen, augment=aug
    )
    spread = torch.cat([(noisy[k] - g[k]).flatten() for k in g]).std()  # the noise: 10 * clip per coordinate
    assert 0.8 * 10 * clip < spread < 1.2 * 10 * clip


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_aisec_engine_spends_at_most_the_target_by_the_opacus_accountant(digits: Dataset, accountant: str) -> None:
    seen: list[tuple[int, int]] = []
    cfg = DPSGDConfig(public=None, epsilon=2.0, epochs=2, accountant=accountant, engine="aisec")
    res = dp_sgd(_mlp(), digits, cfg, progress=lambda done, total: seen.append((done, total)))
    assert 1.8 <= res.epsilon <= 2.0 and res.info["engine"] == "aisec" and seen[-1] == (2, 2)
    assert res.noise_multiplier > 0.5 and res.steps == round(2 / (128 / len(digits.y_train)))


def test_the_aisec_engine_learns_with_augmentation_multiplicity(digits: Dataset) -> None:
    # measured (seeds 0-2): 0.90-0.93 (Opacus engine without augmentation: 0.92-0.93)
    cfg = DPSGDConfig(public=None, epsilon=8.0, epochs=10, engine="aisec", augment_k=2)
    res = dp_sgd(_mlp(), digits, cfg)
    assert accuracy(res.model, digits.x_test, digits.y_test) >= 0.85
    assert res.epsilon <= 8.0 and res.info["augment_k"] == 2 and type(res.model) is nn.Sequential


def test_augmentation_needs_the_aisec_engine_and_images(cancer: Dataset) -> None:
    with pytest.raises(ConfigError, match="augment_k"):
        DPSGDConfig(augment_k=4)
    for bad in ({"augment_k": 0}, {"augment_k": 2.0}, {"augment_shift": -1}, {"engine": "jax"}):
        with pytest.raises(ConfigError):
            DPSGDConfig(**({"engine": "aisec"} | bad))
    tab = nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(InputValidationError, match="images"):
        dp_sgd(tab, cancer, DPSGDConfig(engine="aisec", augment_k=2, epochs=1))
