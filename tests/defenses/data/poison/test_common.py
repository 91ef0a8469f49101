"""Detector plumbing: registry, configs, validation, representations, the 1-D split, the scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aisec.attacks.poisoning.common import PoisonedSet
from aisec.data import Dataset
from aisec.defenses.data.poison import (
    DEFAULT_DETECTORS,
    detectors,
    get_detector,
    load_training_npz,
    precision_recall,
    representations,
    scan,
)
from aisec.defenses.data.poison.common import input_features, two_means_1d
from aisec.errors import ConfigError, InputValidationError
from aisec.targets.recipe import TorchRecipe
from tests.defenses.data.poison.conftest import TARGET, TRIGGER


def test_registry_holds_the_four_detectors() -> None:
    known = detectors()
    assert set(DEFAULT_DETECTORS) <= set(known)
    for name, cls in known.items():
        assert cls.name == name
        assert "arXiv" in cls.paper or "doi" in cls.paper
        assert cls.__doc__


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("spectral", {"representation": "logits"}),
        ("spectral", {"threshold": "median"}),
        ("spectral", {"expected_fraction": 1.5}),
        ("activation-clustering", {"n_components": 0}),
        ("activation-clustering", {"reduce": "tsne"}),
        ("activation-clustering", {"min_silhouette": 2.0}),
        ("isolation-forest", {"contamination": 0.0}),
        ("confident-learning", {"folds": 1}),
        ("confident-learning", {"proxy": "forest"}),
        ("spectral", {"bogus": 1}),
    ],
)
def test_bad_configs_are_config_errors(name: str, params: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        get_detector(name, **params)


def test_unknown_detector_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="spectral"):
        get_detector("telepathy")


def test_bad_inputs_are_rejected(backdoor_set: PoisonedSet) -> None:
    with pytest.raises(InputValidationError, match="y"):
        get_detector("spectral").detect(backdoor_set.x, backdoor_set.y[:-1])
    with pytest.raises(InputValidationError, match="model"):
        get_detector("activation-clustering").detect(backdoor_set.x, backdoor_set.y)
    with pytest.raises(InputValidationError, match="Recipe"):
        get_detector("confident-learning", proxy="recipe").detect(backdoor_set.x, backdoor_set.y, model=nn.Linear(2, 2))
    with pytest.raises(InputValidationError):
        precision_recall(np.zeros(3, bool), np.zeros(4, bool))


def test_two_means_splits_two_blobs_and_not_one() -> None:
    rng = np.random.default_rng(0)
    one = rng.normal(size=600)
    two = np.r_[rng.normal(size=400), rng.normal(loc=12.0, size=100)]
    split_two = two_means_1d(two)
    assert split_two.separation > 8
    assert split_two.small.sum() == 100 and split_two.small[400:].all()
    assert two_means_1d(one).separation < 4


def test_representations_of_models_and_texts(digits: Dataset, tiny_text: Dataset, tiny_text_target: object) -> None:
    from tests.helpers import DigitsCNN

    assert isinstance(digits.x_train, torch.Tensor)
    cnn = DigitsCNN().eval()
    assert representations(cnn, digits.x_train[:5]).shape == (5, 128)
    pipe = tiny_text_target.view("white-box", "probabilities").parameters  # type: ignore[attr-defined]
    feats = representations(pipe, tiny_text.x_train)
    assert feats.shape[0] == len(tiny_text.x_train) and feats.shape[1] > 10
    assert input_features(list(tiny_text.x_train)).shape[0] == len(tiny_text.x_train)
    with pytest.raises(InputValidationError):
        representations(nn.ReLU(), digits.x_train[:2])


def test_text_backdoor_spectral_and_confident_learning_run(tiny_text: Dataset) -> None:
    from aisec.attacks.poisoning.backdoor import add_backdoor
    from aisec.attacks.poisoning.common import TokenTrigger

    ps = add_backdoor(
        list(tiny_text.x_train), tiny_text.y_train, fraction=0.1, trigger=TokenTrigger(), target_label=0, seed=0
    )
    for name in ("spectral", "isolation-forest", "confident-learning"):
        det = get_detector(name).detect(ps.x, ps.y)
        assert det.flagged.shape == (len(ps.y),) and np.isfinite(det.scores).all()


def test_scan_runs_every_detector_and_scores_them(
    digits: Dataset, backdoor_set: PoisonedSet, recipe: TorchRecipe, tmp_path: Path
) -> None:
    rows = scan(
        backdoor_set.x,
        backdoor_set.y,
        recipe=recipe,
        poisoned=backdoor_set.poisoned,
        x_test=digits.x_test,
        y_test=digits.y_test,
        trigger=TRIGGER,
        target_label=TARGET,
        detectors=["spectral", ("activation-clustering", {"rule": "size"})],
    )
    assert [r.detector for r in rows] == ["spectral", "activation-clustering"]
    best = rows[0].to_dict()
    assert best["precision"] >= 0.9 and best["recall"] >= 0.95
    assert best["retrained"]["attack_success"] < 0.05
    assert len(best["flagged_indices"]) == best["flagged"]
    path = tmp_path / "set.npz"
    np.savez(path, x=backdoor_set.x.numpy(), y=backdoor_set.y.numpy(), poisoned=backdoor_set.poisoned)
    loaded = load_training_npz(path)
    assert torch.equal(loaded["x"], backdoor_set.x) and (loaded["poisoned"] == backdoor_set.poisoned).all()
    with pytest.raises(InputValidationError, match="recipe"):
        scan(backdoor_set.x, backdoor_set.y, detectors=["activation-clustering"])
    np.savez(tmp_path / "bad.npz", x=backdoor_set.x.numpy())
    with pytest.raises(InputValidationError):
        load_training_npz(tmp_path / "bad.npz")
