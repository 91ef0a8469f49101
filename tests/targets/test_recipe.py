"""Training recipes: sklearn clone-and-refit, torch trainer functions, and the plan's use of them."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from aisec.assess.plan import make_plan
from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.core.config import parse_spec
from aisec.core.goals import Capability, Goal, Knowledge
from aisec.errors import ConfigError, InputValidationError, UnsupportedTargetError
from aisec.targets.recipe import SklearnRecipe, TorchRecipe, load_trainer, recipe_for
from aisec.targets.sklearn import SklearnTarget
from aisec.targets.torch import TorchTarget


def _predict(target, x):  # type: ignore[no-untyped-def]
    return target.view(Knowledge.WHITE_BOX, "probabilities").predict(x).cpu()


def _linear_trainer(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), int(y.max()) + 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_sklearn_recipe_refits_a_clone_on_new_labels(cancer) -> None:
    x = cancer.x_train
    est = LogisticRegression(max_iter=500).fit(x.numpy(), cancer.y_train.numpy())
    target = SklearnTarget(est, input_shape=(x.shape[1],))
    recipe = recipe_for(target)
    assert isinstance(recipe, SklearnRecipe)
    flipped = 1 - cancer.y_train
    retrained = recipe.fit(x, flipped, seed=3)
    assert retrained is not target and retrained.estimator is not est
    agree = (_predict(retrained, x) == flipped).float().mean()
    assert agree > 0.9  # learned the flipped labels
    assert (_predict(target, x) == cancer.y_train).float().mean() > 0.9  # the original is untouched


def test_torch_recipe_calls_the_trainer_and_wraps_a_target(digits) -> None:
    recipe = TorchRecipe(_linear_trainer, input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0))
    target = recipe.fit(digits.x_train[:300], digits.y_train[:300], seed=0)
    assert isinstance(target, TorchTarget)
    acc = (_predict(target, digits.x_test) == digits.y_test).float().mean()
    assert acc > 0.8
    assert recipe.describe()["kind"] == "torch"


def test_a_trainer_that_returns_no_module_is_one_clear_error(digits) -> None:
    recipe = TorchRecipe(lambda x, y, s: "nope", input_shape=(1, 8, 8), n_classes=10)  # type: ignore[arg-type,return-value]
    with pytest.raises(InputValidationError, match=r"nn\.Module"):
        recipe.fit(digits.x_train[:10], digits.y_train[:10])


def test_load_trainer_imports_from_the_spec_folder(tmp_path) -> None:
    (tmp_path / "my_trainer_mod.py").write_text(
        textwrap.dedent(
            """
            def train(x, y, seed):
                return None
            def two(x, y):
                return None
            """
        )
    )
    try:
        fn = load_trainer("my_trainer_mod:train", base_dir=tmp_path)
        assert fn.__name__ == "train"
        with pytest.raises(ConfigError, match=r"must take \(x, y, seed\)"):
            load_trainer("my_trainer_mod:two", base_dir=tmp_path)
        with pytest.raises(ConfigError, match="no function"):
            load_trainer("my_trainer_mod:missing", base_dir=tmp_path)
    finally:
        sys.modules.pop("my_trainer_mod", None)
    with pytest.raises(ConfigError, match="cannot import"):
        load_trainer("no_such_module_xyz:f")
    with pytest.raises(ConfigError, match=r"package\.module:function"):
        load_trainer("just_a_name")


class _Retrainer(Attack):
    """Test attack that retrains the target once."""

    name = "test-retrainer"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.FLIP_LABELS})
    knowledge = Knowledge.BLACK_BOX
    atlas = owasp = paper = "-"
    headline = "accuracy"
    worse_when = "lower"
    retrains = True

    @dataclass(frozen=True)
    class Config:
        pass

    def _run(self, view, data, ctx):  # type: ignore[no-untyped-def]
        model = ctx.recipe.fit(data.x_train, data.y_train, seed=ctx.seed)
        acc = float((_predict(model, data.x_test) == data.y_test).float().mean())
        return AttackResult(metrics={"accuracy": acc}, summary="retrained")


def test_an_attack_that_retrains_needs_a_recipe(digits, digits_cnn_target) -> None:
    attack = _Retrainer(_Retrainer.Config())
    view = digits_cnn_target.view(Knowledge.BLACK_BOX, "labels")
    with pytest.raises(UnsupportedTargetError, match="training recipe"):
        attack.run(view, digits, AttackContext())
    recipe = recipe_for(digits_cnn_target, _linear_trainer)
    finding = attack.run(view, digits, AttackContext(recipe=recipe))
    assert finding.metrics["accuracy"] > 0.8


def test_the_plan_skips_poisoning_without_a_recipe(digits, digits_cnn_target, monkeypatch) -> None:
    import aisec.assess.plan as plan_mod

    monkeypatch.setattr(plan_mod, "attacks", lambda: {"test-retrainer": _Retrainer})
    spec = parse_spec(
        {
            "name": "p",
            "target": {"kind": "torch", "path": "model.pt"},
            "data": {"kind": "digits"},
            "threat_model": {
                "knowledge": "black-box",
                "training_data": ["flip-labels"],
                "needs": {"integrity": "high"},
            },
        }
    )
    skipped = make_plan(spec, digits_cnn_target, digits).skipped
    assert [s.attack for s in skipped] == ["test-retrainer"] and "training recipe" in skipped[0].reason
    assert [j.attack for j in make_plan(spec, digits_cnn_target, digits, can_retrain=True).jobs] == ["test-retrainer"]
