"""Tiny, seeded fixtures shared by the tests: data sets, trained models and their targets.

Models are trained once per session (each in about a second on a CPU) and always on the CPU, so
results are the same on every machine. Targets are stateless: every test makes its own view, so
budgets and counters never leak between tests.
"""

from __future__ import annotations

import os

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from aisec.data import Dataset, load_breast_cancer, load_digits, load_sms_spam
from aisec.targets import SklearnTarget, TorchTarget
from tests.helpers import (
    SMS_SPAM_PATH,
    seed_everything,
    tiny_text_dataset,
    train_cancer_mlp,
    train_digits_cnn,
    train_text_pipeline,
)

# The test models are tiny: intra-op threads buy nothing and, on a busy 2-core machine, spin-waiting
# threads make training 10x slower. One thread also makes every float reduction reproducible.
torch.set_num_threads(int(os.environ.get("AISEC_TEST_THREADS", "1")))


@pytest.fixture(autouse=True, scope="session")
def _aisec_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep what the tests cache (shadow models, demo models) out of the user's ~/.cache/aisec."""
    os.environ.setdefault("AISEC_CACHE", str(tmp_path_factory.mktemp("aisec-cache")))


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same global random state."""
    seed_everything(0)


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) images in [0, 1], split with seed 0."""
    return load_digits()


@pytest.fixture(scope="session")
def cancer() -> Dataset:
    """Breast cancer (30 standardized features), split with seed 0."""
    return load_breast_cancer()


@pytest.fixture(scope="session")
def digits_cnn(digits: Dataset) -> nn.Module:
    """A tiny CNN trained on the digits' training split (about 97% test accuracy)."""
    return train_digits_cnn(digits)


@pytest.fixture(scope="session")
def digits_cnn_target(digits_cnn: nn.Module) -> TorchTarget:
    return TorchTarget(digits_cnn, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu", name="digits-cnn")


@pytest.fixture(scope="session")
def cancer_mlp(cancer: Dataset) -> nn.Module:
    """A 2-layer MLP trained on breast cancer (about 96% test accuracy)."""
    return train_cancer_mlp(cancer)


@pytest.fixture(scope="session")
def cancer_mlp_target(cancer_mlp: nn.Module) -> TorchTarget:
    return TorchTarget(cancer_mlp, input_shape=(30,), modality="tabular", device="cpu", name="cancer-mlp")


@pytest.fixture(scope="session")
def cancer_sklearn(cancer: Dataset) -> LogisticRegression:
    """Logistic regression fitted on breast cancer's training split."""
    assert isinstance(cancer.x_train, torch.Tensor)
    return LogisticRegression(max_iter=1000, random_state=0).fit(cancer.x_train.numpy(), cancer.y_train.numpy())


@pytest.fixture(scope="session")
def cancer_sklearn_target(cancer_sklearn: LogisticRegression) -> SklearnTarget:
    return SklearnTarget(cancer_sklearn, input_shape=(30,), name="cancer-logreg")


@pytest.fixture(scope="session")
def tiny_text() -> Dataset:
    """Forty inline ham and spam messages (always available, unlike the SMS file)."""
    return tiny_text_dataset()


@pytest.fixture(scope="session")
def tiny_text_target(tiny_text: Dataset) -> SklearnTarget:
    """TF-IDF + logistic regression on the inline messages: a text target that takes strings."""
    return SklearnTarget(train_text_pipeline(tiny_text), name="tiny-text")


@pytest.fixture(scope="session")
def spam_data() -> Dataset:
    """The SMS Spam Collection from the shared folder beside the repository."""
    if not SMS_SPAM_PATH.is_file():
        pytest.skip(f"SMS Spam Collection not found at {SMS_SPAM_PATH} (the shared data folder is not beside the repo)")
    return load_sms_spam(SMS_SPAM_PATH)


@pytest.fixture(scope="session")
def spam_target(spam_data: Dataset) -> SklearnTarget:
    """TF-IDF + logistic regression trained on the SMS training split."""
    return SklearnTarget(train_text_pipeline(spam_data), name="spam-filter")
