"""DP-SGD's input centring (aisec.defenses.training.dp_center): a DP mean, charged to the accountant, folded back."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.data import Dataset
from aisec.defenses.training import dp_center
from aisec.defenses.training.dp import DPSGDConfig, dp_sgd
from aisec.defenses.training.dp_functional import epsilon_of, noise_for
from aisec.errors import ConfigError

pytest.importorskip("opacus")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def test_the_dp_mean_is_the_clipped_mean_plus_noise_of_the_stated_scale() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(500, 1, 8, 8, generator=gen)
    bound = dp_center.row_bound((0.0, 1.0), 64)
    assert bound == pytest.approx(8.0)
    exact = x.mean(0)  # no row of [0, 1]^64 exceeds the bound: nothing clipped
    errs = torch.stack(
        [dp_center.dp_mean(x, bound, 10.0, torch.Generator().manual_seed(s)) - exact for s in range(200)]
    )
    assert errs.shape == (200, 1, 8, 8)
    assert errs.std().item() == pytest.approx(10.0 * 8.0 / 500, rel=0.05)  # noise multiplier x bound / n per feature
    big = torch.full((1, 1, 8, 8), 100.0)  # a row far outside the range moves the sum by at most the bound
    nothing = dp_center.dp_mean(torch.cat([x, big]), bound, 0.0, gen) * 501 - x.sum(0)
    assert nothing.norm().item() == pytest.approx(bound, rel=1e-4)


def test_folding_the_offset_into_the_first_linear_gives_the_centred_outputs() -> None:
    net = _mlp().eval()
    name = dp_center.first_linear(net, (1, 8, 8))
    assert name == "1"
    layer = net.get_submodule(name)
    offset, x = torch.rand(1, 8, 8), torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        centred = net(x - offset)
        dp_center.fold(layer, offset)
        assert torch.allclose(net(x), centred, atol=1e-5)


def test_no_layer_to_fold_into_for_a_convolution_or_a_bias_free_linear() -> None:
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    assert dp_center.first_linear(conv, (1, 8, 8)) is None
    assert dp_center.first_linear(nn.Sequential(nn.Flatten(), nn.Linear(64, 10, bias=False)), (1, 8, 8)) is None


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_composed_noise_spends_the_budget_with_the_mean_charged(accountant: str) -> None:
    prior = [(10.0, 1.0, 1)]
    rate, steps = 0.125, 240
    sigma = noise_for(3.0, 1e-5, rate, steps, accountant, prior)
    assert epsilon_of([*prior, (sigma, rate, steps)], 1e-5, accountant) <= 3.0
    assert epsilon_of([*prior, (sigma * 0.99, rate, steps)], 1e-5, accountant) > 3.0  # the smallest
    assert sigma > noise_for(3.0, 1e-5, rate, steps, accountant)  # the mean costs some noise
    with pytest.raises(ValueError, match="before DP-SGD alone spend"):
        noise_for(0.01, 1e-5, rate, steps, accountant, [(0.1, 1.0, 1)])


@pytest.mark.parametrize("engine", ["opacus", "aisec"])
def test_dp_sgd_centres_by_default_and_charges_the_mean(digits: Dataset, engine: str) -> None:
    res = dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=2.0, epochs=2, engine=engine))
    assert res.info["center"].startswith("dp-mean")
    assert 1.8 <= res.epsilon <= 2.0
    n = len(digits.y_train)
    rate = 1 / -(-n // 128) if engine == "opacus" else 128 / n
    alone = epsilon_of([(res.noise_multiplier, rate, res.steps)], 1e-5, "prv")
    assert alone < res.epsilon  # the steps alone spend less: the rest is the mean's
    none = dp_sgd(_mlp(), digits, DPSGDConfig(public=None, epsilon=2.0, epochs=2, engine=engine, center="none"))
    assert none.info["center"] == "none" and none.noise_multiplier < res.noise_multiplier
    assert type(res.model) is nn.Sequential and res.model[1].bias.shape == (64,)  # folded: same architecture


def test_centring_is_skipped_with_a_reason_where_it_cannot_apply(digits: Dataset, cancer: Dataset) -> None:
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    res = dp_sgd(conv, digits, DPSGDConfig(public=None, epsilon=8.0, epochs=1))
    assert res.info["center"].startswith("none: the first layer")
    tab = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))
    assert cancer.clip is None
    res = dp_sgd(tab, cancer, DPSGDConfig(epsilon=8.0, epochs=1))
    assert res.info["center"].startswith("none: the data declares no value range")


def test_bad_centring_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="center"):
        DPSGDConfig(center="median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="center_noise"):
        DPSGDConfig(center_noise=0.0)


@pytest.mark.parametrize("engine", ["opacus", "aisec"])
def test_fine_tuning_given_weights_starts_from_their_function_on_centred_inputs(digits: Dataset, engine: str) -> None:
    # reinit=False keeps weights learned from public data: training on x - m must start from what they compute
    # on x, so the offset is folded out of the first layer's bias before the first step (and back in after).
    net = _mlp()
    cfg = DPSGDConfig(epsilon=8.0, epochs=1, reinit=False, freeze="none", lr=1e-9, engine=engine, accountant="rdp")
    res = dp_sgd(net, digits, cfg)
    assert res.info["center"].startswith("dp-mean")
    with torch.no_grad():
        given, tuned = net(digits.x_test), res.model(digits.x_test)
    assert torch.allclose(given, tuned, atol=1e-5)  # a step of lr 1e-9 moves nothing; the centring must not either
