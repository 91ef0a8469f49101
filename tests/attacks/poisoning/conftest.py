"""Fixtures of the poisoning tests: training recipes for the shared targets.

Importing the attack modules registers them (until ``aisec.attacks`` imports them itself).
"""

from __future__ import annotations

import pytest

from aisec.attacks.poisoning import backdoor, clean_label, feature_collision, label_flip  # noqa: F401
from aisec.targets.recipe import TorchRecipe
from tests.attacks.poisoning.trainers import cancer_recipe, digits_mlp_trainer, digits_recipe


@pytest.fixture(scope="session")
def digits_cnn_recipe() -> TorchRecipe:
    """Retrains the tiny digits CNN of the shared ``digits_cnn_target``."""
    return digits_recipe()


@pytest.fixture(scope="session")
def digits_mlp_recipe() -> TorchRecipe:
    return digits_recipe(digits_mlp_trainer)


@pytest.fixture(scope="session")
def cancer_mlp_recipe() -> TorchRecipe:
    """Retrains the breast cancer MLP of the shared ``cancer_mlp_target``."""
    return cancer_recipe()
