"""Feature collision ("Poison Frogs!", Shafahi et al. 2018) against the digits CNN's final layer."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.poisoning.feature_collision import FeatureCollision, craft_poisons, poison_frog, split_head
from aisec.data import Dataset
from aisec.errors import AccessDeniedError, ConfigError, UnsupportedTargetError
from aisec.targets import TorchTarget


def test_poisons_move_towards_the_target_in_feature_space_and_stay_near_their_bases(
    digits: Dataset, digits_cnn: torch.nn.Module
) -> None:
    assert isinstance(digits.x_train, torch.Tensor) and isinstance(digits.x_test, torch.Tensor)
    features, head = split_head(digits_cnn)
    assert features(digits.x_test[:3]).shape == (3, head.in_features)
    target = digits.x_test[:1]
    bases = digits.x_train[digits.y_train == (int(digits.y_test[0]) + 1) % 10][:3]
    poisons = craft_poisons(features, target, bases, iters=50)
    with torch.no_grad():
        before = (features(bases) - features(target)).norm(dim=1)
        after = (features(poisons) - features(target)).norm(dim=1)
    assert (after < 0.5 * before).all()
    assert poisons.min() >= 0 and poisons.max() <= 1
    far = craft_poisons(features, target, bases, iters=50, beta=100.0)  # a strong proximity term keeps them near
    assert (far - bases).norm() < (poisons - bases).norm()
    pset = poison_frog(digits.x_train, digits.y_train, digits_cnn, target, base_class=3, n_poisons=4, iters=5)
    assert pset.n_poison == 4 and (pset.y[-4:] == 3).all() and pset.poisoned[-4:].all()


class _Doubled(torch.nn.Module):
    """Logits that are not the final linear layer's output."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.inner(x)


def test_torchscript_models_give_the_same_features_or_are_refused(digits: Dataset, digits_cnn: torch.nn.Module) -> None:
    assert isinstance(digits.x_test, torch.Tensor)
    sample = digits.x_test[:8]
    eager, _ = split_head(digits_cnn)
    scripted, head = split_head(torch.jit.script(digits_cnn), sample)
    with torch.no_grad():
        assert torch.allclose(scripted(sample), eager(sample), atol=1e-5)
        assert torch.allclose(head(scripted(sample)), digits_cnn(sample), atol=1e-4)
    with pytest.raises(UnsupportedTargetError, match="penultimate"):
        split_head(torch.jit.script(_Doubled(digits_cnn)), sample)
    with pytest.raises(UnsupportedTargetError, match=r"jit\.script"):
        split_head(torch.jit.trace(digits_cnn, sample), sample)


@pytest.mark.parametrize("bad", [{"opacity": 1.0}, {"n_poisons": 0}, {"beta": -1.0}])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        FeatureCollision(**bad)


def test_poisons_win_most_targets_where_unperturbed_bases_win_none(
    digits: Dataset, digits_cnn_target: TorchTarget
) -> None:
    # measured, 10 targets, 5 poisons each, opacity 0.3 (seeds 0-2): 1.0, 1.0, 0.9 (baseline 0.0 each);
    # without the watermark (opacity 0): 0.6, 0.7, 0.5
    view = digits_cnn_target.view("white-box", "probabilities")
    finding = FeatureCollision(n_targets=10).run(view, digits, AttackContext(seed=0))
    m = finding.metrics
    assert m["n_targets"] == 10
    assert m["attack_success_rate"] >= 0.7
    assert m["baseline_attack_success_rate"] <= 0.2
    assert m["clean_accuracy"] >= m["baseline_clean_accuracy"] - 0.02  # the poisons do not hurt anything else
    assert finding.queries == 0


def test_feature_collision_needs_the_parameters(digits: Dataset, digits_cnn_target: TorchTarget) -> None:
    with pytest.raises(AccessDeniedError):
        FeatureCollision().run(digits_cnn_target.view("grey-box", "probabilities"), digits)
