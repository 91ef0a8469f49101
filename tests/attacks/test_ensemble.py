"""robust-eval takes the worst case over its suite, attacks only survivors, and flags masked gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from aisec.attacks.base import AttackContext
from aisec.attacks.integrity.apgd import APGD
from aisec.attacks.integrity.ensemble import RobustEval
from aisec.attacks.integrity.pgd import PGD
from aisec.core.threat_model import ThreatModel
from aisec.errors import ConfigError
from aisec.targets import TorchTarget

FAST = {"steps": 20, "n_target_classes": 3, "n_samples": 120}


def test_worst_case_is_no_better_than_any_single_attack(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    ctx = AttackContext(seed=3)
    ens = RobustEval(attacks=["fgsm", "pgd", "apgd-ce", "apgd-dlr-targeted"], eps=[0.1], **FAST).run(view, digits, ctx)
    m = ens.metrics
    pgd = PGD(eps=0.1, steps=20, n_samples=120).run(view, digits, ctx).metrics
    apgd = APGD(eps=0.1, steps=20, n_samples=120).run(view, digits, ctx).metrics
    assert m["clean_accuracy"] == pytest.approx(pgd["clean_accuracy"])
    assert m["robust_accuracy"] <= min(pgd["robust_accuracy"], apgd["robust_accuracy"])
    assert m["robust_accuracy"] < m["clean_accuracy"] - 0.3
    # later attacks see only the survivors of the earlier ones
    rows = m["per_attack"]
    assert [r["attack"] for r in rows] == ["fgsm", "pgd", "apgd-ce", "apgd-dlr-targeted"]
    for a, b in itertools.pairwise(rows):
        assert b["attacked"] == a["attacked"] - a["broken"]
    left = rows[-1]["attacked"] - rows[-1]["broken"]
    assert m["robust_accuracy"] == pytest.approx(left / m["n"])
    assert ens.flags == []


def test_the_curve_falls_with_eps_and_the_unbounded_attack_reaches_zero(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    f = RobustEval(**FAST).run(view, digits)
    m = f.metrics
    assert m["curve_eps"] == [0.05, 0.1, 0.2]
    assert m["eps"] == 0.1 and m["robust_accuracy"] == m["curve_robust_accuracy"][1]
    acc = m["curve_robust_accuracy"]
    assert acc[0] >= acc[1] >= acc[2] and acc[0] > acc[2] + 0.3  # measured ~0.86, ~0.5, 0.0
    assert m["unbounded_robust_accuracy"] == 0.0
    assert f.flags == []


def test_the_grid_comes_from_the_threat_model(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    tm = ThreatModel(knowledge="white-box", epsilon=0.08)
    m = RobustEval(unbounded_check=False, **FAST).run(view, digits, AttackContext(threat_model=tm)).metrics
    assert m["curve_eps"] == pytest.approx([0.04, 0.08, 0.16])
    assert m["eps"] == 0.08
    assert "unbounded_robust_accuracy" not in m


class _Masked(nn.Module):
    """Quantizes its input to 16 grey levels first: round() has zero gradient, so gradients vanish."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 16) / 16)


def test_masked_gradients_are_flagged(digits_cnn, digits) -> None:  # type: ignore[no-untyped-def]
    target = TorchTarget(_Masked(digits_cnn), input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    f = RobustEval(attacks=["apgd-ce"], **FAST).run(target.view("white-box", "probabilities"), digits)
    assert f.metrics["unbounded_robust_accuracy"] > 0.01
    assert any("eps=1" in flag for flag in f.flags)
    assert "sanity flag" in f.summary


def test_a_black_box_attack_that_beats_the_white_box_ones_is_flagged(digits_cnn, digits) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("aisec.attacks.integrity.square")
    target = TorchTarget(_Masked(digits_cnn), input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    cfg = {**FAST, "n_samples": 60}
    f = RobustEval(attacks=["apgd-ce", "square"], eps=[0.2], unbounded_check=False, **cfg).run(
        target.view("white-box", "probabilities"), digits
    )
    rows = f.metrics["per_attack"]
    assert rows[-1]["attack"] == "square" and rows[-1]["broken"] > 0
    assert any("black-box" in flag for flag in f.flags)


@pytest.mark.parametrize(
    "bad",
    [{"eps": []}, {"eps": [0.1, -0.1]}, {"eps": "0.1"}, {"attacks": []}, {"attacks": ["robust-eval"]},
     {"norm": "l1"}, {"steps": 0}],
)  # fmt: skip
def test_bad_config_is_a_config_error(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError):
        RobustEval(**bad)


def test_an_unknown_attack_in_the_suite_names_the_allowed_ones(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"no-such-attack.*apgd-ce"):
        RobustEval(attacks=["no-such-attack"]).run(digits_cnn_target.view("white-box", "probabilities"), digits)


def test_lists_become_tuples_so_the_config_stays_hashable() -> None:
    cfg = RobustEval(eps=[0.1, 0.2], attacks=["apgd-ce"]).config
    assert cfg.eps == (0.1, 0.2) and cfg.attacks == ("apgd-ce",)
    assert RobustEval.config_from({"eps": [0.1, 0.2], "attacks": ["apgd-ce"]}) == cfg


def test_an_external_attack_with_a_broken_mask_gives_the_exact_union(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    # square reports which inputs it broke, so deepfool after it attacks only the survivors and the
    # robust count is exact (a count-only attack would leave deepfool all of square's inputs)
    pytest.importorskip("aisec.attacks.integrity.square")
    pytest.importorskip("aisec.attacks.integrity.deepfool")
    view = digits_cnn_target.view("white-box", "probabilities")
    f = RobustEval(attacks=["square", "deepfool"], eps=[0.1], unbounded_check=False, n_samples=60).run(view, digits)
    rows = f.metrics["per_attack"]
    assert [r["attack"] for r in rows] == ["square", "deepfool"]
    assert rows[0]["broken"] > 0
    assert rows[1]["attacked"] == rows[0]["attacked"] - rows[0]["broken"]
    left = rows[1]["attacked"] - rows[1]["broken"]
    assert f.metrics["robust_accuracy"] == pytest.approx(left / f.metrics["n"])
