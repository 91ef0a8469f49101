"""The plan picks the attacks whose needs fit the threat model, target and data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.assess.plan import job_id, make_plan
from aisec.core.config import parse_spec
from aisec.core.goals import Capability, Goal, Modality
from aisec.data import load_breast_cancer, load_digits
from aisec.errors import ConfigError
from aisec.registry import get_attack
from aisec.targets import SklearnTarget, TorchTarget


@pytest.fixture(scope="module")
def digits_target() -> TorchTarget:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return TorchTarget(model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")


def _spec(**kw: object) -> dict:
    base = {"name": "p", "target": {"kind": "torch", "path": "m.pt"}, "data": {"kind": "digits"}}
    return {**base, **kw}


def test_auto_under_white_box_runs_both_reference_attacks(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "white-box"}))
    plan = make_plan(spec, digits_target, load_digits())
    jobs = [j.attack for j in plan.jobs]
    assert {"fgsm", "pgd", "equation-solving", "loss-threshold"} <= set(jobs)
    assert all(get_attack(a).modalities >= {Modality.IMAGE} for a in jobs)  # nothing for text


def test_auto_under_black_box_skips_gradient_attacks_with_a_reason(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "black-box"}))
    plan = make_plan(spec, digits_target, load_digits())
    jobs = [j.attack for j in plan.jobs]
    assert "loss-threshold" in jobs and "equation-solving" in jobs
    assert not any(Capability.GRADIENTS in get_attack(a).needs for a in jobs)
    (skip,) = [s for s in plan.skipped if s.attack == "fgsm"]
    assert "gradients" in skip.reason and "black-box" in skip.reason


def test_labels_only_output_leaves_no_probability_attack(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "black-box", "output": "labels"}))
    plan = make_plan(spec, digits_target, load_digits())
    jobs = [j.attack for j in plan.jobs]
    assert "hopskipjump" in jobs  # decision-based: labels are enough
    assert not any(get_attack(a).needs & {Capability.PROBABILITIES, Capability.GRADIENTS} for a in jobs)
    assert {s.attack for s in plan.skipped} >= {"fgsm", "pgd", "square", "equation-solving", "loss-threshold"}


def test_goals_without_a_need_are_not_attacked(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "white-box", "needs": {"privacy": "high"}}))
    plan = make_plan(spec, digits_target, load_digits())
    assert "loss-threshold" in [j.attack for j in plan.jobs]
    assert {j.goal for j in plan.jobs} == {Goal.PRIVACY}
    assert any("integrity" in s.reason for s in plan.skipped)


def test_budget_below_an_attacks_minimum_skips_it(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "black-box", "query_budget": 10}))
    plan = make_plan(spec, digits_target, load_digits())
    assert plan.jobs == ()
    assert any("queries" in s.reason for s in plan.skipped)


def test_target_without_gradients_skips_fgsm_even_white_box() -> None:
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer()
    est = LogisticRegression(max_iter=500).fit(data.x_train.numpy(), data.y_train.numpy())
    target = SklearnTarget(est, input_shape=(30,))
    spec = parse_spec(
        {
            **_spec(threat_model={"knowledge": "white-box"}),
            "data": {"kind": "breast_cancer"},
            "target": {"kind": "sklearn", "path": "m"},
        }
    )
    plan = make_plan(spec, target, data)
    jobs = [j.attack for j in plan.jobs]
    assert "loss-threshold" in jobs and "fgsm" not in jobs
    assert not any(Capability.GRADIENTS in get_attack(a).needs for a in jobs)
    assert any(s.attack == "fgsm" and "sklearn target cannot provide" in s.reason for s in plan.skipped)


def test_explicit_attack_the_threat_model_forbids_is_an_error(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "black-box"}, attacks=["fgsm"]))
    with pytest.raises(ConfigError, match=r"fgsm.*gradients"):
        make_plan(spec, digits_target, load_digits())


def test_epsilon_of_the_threat_model_fills_unset_eps(digits_target: TorchTarget) -> None:
    spec = parse_spec(
        _spec(
            threat_model={"knowledge": "white-box", "epsilon": 0.3},
            attacks=[{"name": "fgsm"}, {"name": "fgsm", "eps": 0.05}],
        )
    )
    plan = make_plan(spec, digits_target, load_digits())
    assert [j.params["eps"] for j in plan.jobs] == [0.3, 0.05]


def test_job_ids_are_stable_and_duplicates_collapse(digits_target: TorchTarget) -> None:
    spec = parse_spec(
        _spec(threat_model={"knowledge": "white-box"}, attacks=[{"name": "fgsm"}, {"name": "fgsm", "eps": 0.1}])
    )
    plan = make_plan(spec, digits_target, load_digits())
    assert len(plan.jobs) == 1  # eps 0.1 is fgsm's default: the same job
    assert plan.jobs[0].id == job_id("fgsm", plan.jobs[0].params)
    again = make_plan(spec, digits_target, load_digits())
    assert [(j.id, j.seed) for j in again.jobs] == [(j.id, j.seed) for j in plan.jobs]


def test_an_eps_grid_is_not_overwritten_by_the_threat_models_epsilon(digits_target: TorchTarget) -> None:
    spec = parse_spec(_spec(threat_model={"knowledge": "white-box", "epsilon": 0.25}, attacks=["robust-eval", "pgd"]))
    jobs = {j.attack: j.params for j in make_plan(spec, digits_target, load_digits()).jobs}
    assert jobs["pgd"]["eps"] == 0.25
    assert jobs["robust-eval"]["eps"] is None  # it builds its grid around the threat model's epsilon itself


def test_the_targets_recipe_fills_the_shadow_attacks_unset_fields(digits_target: TorchTarget) -> None:
    recipe = {"hidden": [128, 128], "epochs": 300, "lr": 0.003, "batch_size": 32}
    attacks = [{"name": "lira", "epochs": 50}, {"name": "shokri"}, {"name": "rmia"}, {"name": "property-inference"},
               {"name": "dp-audit"}, {"name": "loss-threshold"}]  # fmt: skip
    spec = parse_spec(
        _spec(target={"kind": "torch", "path": "m.pt", "recipe": recipe}, attacks=attacks,
              threat_model={"knowledge": "grey-box", "needs": {"privacy": "high"}})
    )  # fmt: skip
    params = {j.attack: j.params for j in make_plan(spec, digits_target, load_digits()).jobs}
    assert params["lira"]["epochs"] == 50 and params["lira"]["hidden"] == (128, 128)  # its own epochs win
    for name in ("shokri", "rmia", "property-inference"):
        got = tuple(params[name][k] for k in ("hidden", "epochs", "lr", "batch_size"))
        assert got == ((128, 128), 300, 0.003, 32), name
    assert params["dp-audit"]["lira"] == recipe  # the LiRA that dp-audit runs
    assert params["loss-threshold"]["batch_size"] == 512  # a query batch, not a training one: untouched
    with pytest.raises(ConfigError, match="recipe"):
        parse_spec(_spec(target={"kind": "torch", "path": "m.pt", "recipe": {"hidden": []}}))
    with pytest.raises(ConfigError, match="recipe"):
        parse_spec(_spec(target={"kind": "torch", "path": "m.pt", "recipe": {"optimizer": "sgd"}}))
