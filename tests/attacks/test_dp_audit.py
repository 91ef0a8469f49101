"""The DP audit (aisec.attacks.privacy.dp_audit): the Clopper-Pearson bound, and LiRA against DP and non-DP models."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import dp_audit as _dp_audit  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.dp_audit import (
    DPAudit,
    epsilon_lower_bound,
    holdout_lower_bound,
    provable_ceiling,
)
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import attacks
from aisec.targets import TorchTarget

RECIPE = {"hidden": [64], "epochs": 60, "lr": 3e-3}
N = 150


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path_factory.getbasetemp() / "dp-audit-cache"))


# -- the bound, by hand ---------------------------------------------------------------------------


def test_a_perfect_attack_gives_the_closed_form_clopper_pearson_bound() -> None:
    # every member scores 1, every non-member 0: TPR = 100/100 and FPR = 0/100, whose exact 95%
    # Clopper-Pearson ends are 0.025^(1/100) and 1 - 0.025^(1/100)
    s_in, s_out = np.ones(100), np.zeros(100)
    lo = 0.025 ** (1 / 100)
    for delta in (0.0, 1e-5, 0.1):
        b = epsilon_lower_bound(s_in, s_out, delta=delta)
        assert b.epsilon == pytest.approx(math.log((lo - delta) / (1 - lo)), rel=1e-9)
        assert (b.tpr, b.fpr, b.threshold) == (1.0, 0.0, 1.0)
        assert b.tpr_low == pytest.approx(lo) and b.fpr_high == pytest.approx(1 - lo)
    assert provable_ceiling(100, 100, delta=1e-5) == pytest.approx(epsilon_lower_bound(s_in, s_out, delta=1e-5).epsilon)


def test_the_complementary_direction_counts_too() -> None:
    # 50 members score 1 and 50 score 0; all 100 non-members score 0: TNR = 1 and FNR = 1/2 at t = 1,
    # TPR = 1/2 and FPR = 0 as well: log((0.025^(1/100) - d) / u) vs log((l50 - d) / (1 - 0.025^(1/100)))
    s_in, s_out = np.r_[np.ones(50), np.zeros(50)], np.zeros(100)
    b = epsilon_lower_bound(s_in, s_out, delta=0.0)
    assert b.tpr == 0.5 and b.fpr == 0.0 and b.direction == "tpr"
    from scipy.stats import beta

    expected = math.log(beta.ppf(0.025, 50, 51) / (1 - 0.025 ** (1 / 100)))
    assert b.epsilon == pytest.approx(expected, rel=1e-9)


def test_no_signal_gives_zero_and_the_bound_is_never_negative() -> None:
    rng = np.random.default_rng(0)
    assert epsilon_lower_bound(np.zeros(50), np.zeros(50), delta=1e-5).epsilon == 0.0
    b = epsilon_lower_bound(rng.normal(size=200), rng.normal(size=200), delta=1e-5)
    assert 0.0 <= b.epsilon < 0.5
    assert 0.0 <= holdout_lower_bound(rng.normal(size=200), rng.normal(size=200), delta=1e-5).epsilon < 0.5


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InputValidationError):
        epsilon_lower_bound(np.zeros(0), np.zeros(3), delta=1e-5)
    with pytest.raises(InputValidationError):
        epsilon_lower_bound(np.zeros(3), np.zeros(3), delta=1.0)
    for bad in ({"delta": 1.5}, {"accountant_epsilon": -1.0}, {"confidence": 1.0}, {"lira": {"shadows": 4}}):
        with pytest.raises(ConfigError):
            DPAudit(**bad)


# -- against models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def members(digits: Dataset) -> Dataset:
    """150 random training points as members, 150 test points (the LiRA tests' setting)."""
    assert isinstance(digits.x_train, torch.Tensor) and isinstance(digits.x_test, torch.Tensor)
    rng = np.random.default_rng(0)
    tr = torch.as_tensor(rng.permutation(len(digits.y_train))[:N])
    te = torch.as_tensor(rng.permutation(len(digits.y_test))[:N])
    return dataclasses.replace(
        digits,
        x_train=digits.x_train[tr],
        y_train=digits.y_train[tr],
        x_test=digits.x_test[te],
        y_test=digits.y_test[te],
    )


def _audit(model: torch.nn.Module, data: Dataset, run_dir: Path | None = None) -> object:
    target = TorchTarget(model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    view = target.view("grey-box", "probabilities")
    return DPAudit(shadows=8, n_samples=N, lira=RECIPE).run(view, data, AttackContext(seed=0, run_dir=run_dir))


def test_a_dp_model_audits_below_its_accountant_and_below_an_overfit_model(members: Dataset, tmp_path: Path) -> None:
    pytest.importorskip("opacus")
    from aisec.defenses.training.dp import DPSGDConfig, dp_sgd

    overfit = train_mlp(members.x_train, members.y_train, 10, TrainingRecipe(hidden=(64,), epochs=60, lr=3e-3), seed=0)
    private = dp_sgd(overfit, members, DPSGDConfig(epsilon=1.0, epochs=15, batch_size=64)).model
    plain, dp = _audit(overfit, members), _audit(private, members, tmp_path)
    # measured on seeds 0-2: overfit 1.06-1.20, DP (epsilon 1) 0.00
    assert plain.metrics["accountant_epsilon"] is None and "unknown" in plain.summary
    assert plain.metrics["epsilon_lower_bound"] > 0.7
    eps_dp, acc_dp = dp.metrics["epsilon_lower_bound"], dp.metrics["accountant_epsilon"]
    assert math.isfinite(eps_dp) and 0.0 <= eps_dp < acc_dp <= 1.0
    assert plain.metrics["epsilon_lower_bound"] > eps_dp + 0.5
    assert 0.0 <= dp.metrics["epsilon_lower_bound_holdout"] < acc_dp
    assert f"accountant epsilon {acc_dp:.2f}" in dp.summary
    assert not any("exceeds the accountant" in f for f in dp.flags)
    assert dp.evidence["arrays"] and (tmp_path / dp.evidence["arrays"]).is_file()


def test_the_audit_is_a_registered_grey_box_privacy_attack() -> None:
    cls = attacks()["dp-audit"]
    assert cls is DPAudit and cls.knowledge.value == "grey-box" and cls.headline == "epsilon_lower_bound"
    cfg = DPAudit(shadows=4, lira={"epochs": 5}).config.lira_config()
    assert cfg.shadows == 4 and cfg.epochs == 5
