"""Properties that hold for any valid input (hypothesis): balls, clip ranges, order invariance, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aisec.attacks.integrity.fgsm import FGSMConfig, fgsm_perturb
from aisec.attacks.privacy.loss_threshold import LossThresholdConfig
from aisec.attacks.privacy.metrics import membership_metrics
from aisec.data import Dataset
from aisec.errors import ConfigError

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def batch(digits: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(digits.x_test, torch.Tensor)
    return digits.x_test[:64], digits.y_test[:64]


# -- FGSM ---------------------------------------------------------------------------------------------


@SETTINGS
@given(eps=st.floats(0.0, 0.5), targeted=st.booleans(), start=st.integers(0, 48))
def test_fgsm_stays_in_the_eps_ball_and_the_clip_range(
    digits_cnn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], eps: float, targeted: bool, start: int
) -> None:
    x, y = batch[0][start : start + 16], batch[1][start : start + 16]
    x_adv = fgsm_perturb(digits_cnn, x, y, eps, targeted=targeted, clip=(0.0, 1.0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not x_adv.requires_grad
    if eps > 1e-3:  # a real step moves every pixel that the clip range does not pin
        moved = (x_adv - x).abs() > eps / 2
        pinned = ((x == 0) & (x_adv == 0)) | ((x == 1) & (x_adv == 1))
        assert (moved | pinned).float().mean() > 0.9


@SETTINGS
@given(start=st.integers(0, 48), targeted=st.booleans())
def test_fgsm_with_eps_zero_changes_nothing(
    digits_cnn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], start: int, targeted: bool
) -> None:
    x, y = batch[0][start : start + 16], batch[1][start : start + 16]
    x_adv = fgsm_perturb(digits_cnn, x, y, 0.0, targeted=targeted, clip=(0.0, 1.0))
    assert torch.equal(x_adv, x)
    assert x_adv is not x


def test_fgsm_step_raises_the_loss(digits_cnn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    loss = nn.functional.cross_entropy
    with torch.no_grad():  # fgsm_perturb turns gradients back on for its own step
        clean = loss(digits_cnn(x), y)
        away = loss(digits_cnn(fgsm_perturb(digits_cnn, x, y, 0.05, clip=(0, 1))), y)
        towards = loss(digits_cnn(fgsm_perturb(digits_cnn, x, y, 0.05, targeted=True, clip=(0, 1))), y)
    assert away > clean > towards


def test_fgsm_without_clip_is_an_exact_signed_step(
    digits_cnn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = batch
    delta = fgsm_perturb(digits_cnn, x, y, 0.25) - x
    assert torch.allclose(delta.abs()[delta != 0], torch.tensor(0.25), atol=1e-6)
    assert float(x.min() + delta.min()) < 0  # unclipped: it leaves [0, 1]


invalid_eps = st.one_of(st.floats(max_value=-1e-12, allow_infinity=True), st.just(math.nan), st.just(math.inf))


@SETTINGS
@given(eps=invalid_eps)
def test_fgsm_config_rejects_invalid_eps(eps: float) -> None:
    with pytest.raises(ConfigError, match=r"fgsm\.eps"):
        FGSMConfig(eps=eps)


@SETTINGS
@given(value=st.one_of(st.integers(max_value=0), st.floats(0.01, 100.0).filter(lambda v: v != int(v))))
def test_fgsm_config_rejects_invalid_batch_size_and_n_samples(value: float) -> None:
    with pytest.raises(ConfigError, match=r"fgsm\.batch_size"):
        FGSMConfig(batch_size=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"fgsm\.n_samples"):
        FGSMConfig(n_samples=value)  # type: ignore[arg-type]


@SETTINGS
@given(eps=st.floats(0.0, 10.0), batch_size=st.integers(1, 10_000), n_samples=st.none() | st.integers(1, 10_000))
def test_fgsm_config_accepts_valid_values(eps: float, batch_size: int, n_samples: int | None) -> None:
    cfg = FGSMConfig(eps=eps, batch_size=batch_size, n_samples=n_samples)
    assert (cfg.eps, cfg.batch_size, cfg.n_samples) == (eps, batch_size, n_samples)


@pytest.mark.parametrize("bad", [True, "0.1", None])
def test_fgsm_config_rejects_values_of_the_wrong_type(bad: object) -> None:
    with pytest.raises(ConfigError):
        FGSMConfig(eps=bad)  # type: ignore[arg-type]


# -- loss threshold -------------------------------------------------------------------------------------


@SETTINGS
@given(
    fpr=st.one_of(
        st.floats(max_value=-1e-12, allow_infinity=True),
        st.floats(min_value=1.0 + 1e-9, allow_infinity=True),
        st.just(math.nan),
    )
)
def test_loss_threshold_config_rejects_calibration_fpr_outside_the_unit_interval(fpr: float) -> None:
    with pytest.raises(ConfigError, match="calibration_fpr"):
        LossThresholdConfig(calibration_fpr=fpr)


@SETTINGS
@given(fpr=st.floats(0.0, 1.0))
def test_loss_threshold_config_accepts_calibration_fpr_in_the_unit_interval(fpr: float) -> None:
    assert LossThresholdConfig(calibration_fpr=fpr).calibration_fpr == fpr


@pytest.mark.parametrize("field", ["batch_size", "n_samples"])
@pytest.mark.parametrize("bad", [0, -5, 2.5])
def test_loss_threshold_config_rejects_invalid_sizes(field: str, bad: float) -> None:
    with pytest.raises(ConfigError, match=rf"loss-threshold\.{field}"):
        LossThresholdConfig(**{field: bad})


# -- membership metrics ---------------------------------------------------------------------------------

scores = st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=60)


@SETTINGS
@given(scores_in=scores, scores_out=scores, seed=st.integers(0, 2**32 - 1))
def test_membership_metrics_do_not_depend_on_the_order_of_scores(
    scores_in: list[float], scores_out: list[float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a = membership_metrics(np.array(scores_in), np.array(scores_out))
    b = membership_metrics(rng.permutation(scores_in), rng.permutation(scores_out))
    assert a == b
    assert 0.0 <= a["auc"] <= 1.0
    assert 0.0 <= a["tpr_at_0.1pct_fpr"] <= a["tpr_at_1pct_fpr"] <= 1.0
    assert (a["n_members"], a["n_non_members"]) == (len(scores_in), len(scores_out))


@SETTINGS
@given(scores_in=scores, scores_out=scores)
def test_swapping_members_and_non_members_mirrors_the_auc(scores_in: list[float], scores_out: list[float]) -> None:
    a = membership_metrics(np.array(scores_in), np.array(scores_out))["auc"]
    b = membership_metrics(np.array(scores_out), np.array(scores_in))["auc"]
    assert a + b == pytest.approx(1.0)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_auc_of_one_distribution_is_about_a_half(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = membership_metrics(rng.normal(size=2000), rng.normal(size=2000))
    assert abs(m["auc"] - 0.5) < 0.05  # the AUC's standard deviation here is 0.009
    same = rng.normal(size=100)
    assert membership_metrics(same, same.copy())["auc"] == 0.5


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), gap=st.floats(0.001, 100.0))
def test_separated_scores_give_auc_one_and_full_tpr(seed: int, gap: float) -> None:
    rng = np.random.default_rng(seed)
    out = rng.uniform(-1, 0, size=300)
    m = membership_metrics(rng.uniform(0, 1, size=300) + gap, out)
    assert m["auc"] == 1.0
    assert m["tpr_at_1pct_fpr"] == 1.0 and m["tpr_at_0.1pct_fpr"] == 1.0
    assert m["min_resolvable_fpr"] == pytest.approx(1 / 300)
    reverse = membership_metrics(out, rng.uniform(0, 1, size=300) + gap)
    assert reverse["auc"] == 0.0 and reverse["tpr_at_1pct_fpr"] == 0.0


def test_roc_points_are_thinned_and_monotone() -> None:
    rng = np.random.default_rng(0)
    m = membership_metrics(rng.normal(0.5, 1, size=5000), rng.normal(size=5000), max_points=50)
    fpr, tpr = np.array(m["roc_fpr"]), np.array(m["roc_tpr"])
    assert len(fpr) == len(tpr) <= 51
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert fpr[0] == 0.0 and fpr[-1] == 1.0
