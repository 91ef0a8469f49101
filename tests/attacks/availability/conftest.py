"""Fixtures of the availability tests: a naive Bayes spam filter beside the TF-IDF + LR one.

The attack modules are imported inside fixtures, not at collection, so the contract test
(tests/attacks/test_contract.py) sees only the attacks registered in ``aisec.attacks``.
"""

from __future__ import annotations

from typing import Any

import pytest

from aisec.data import Dataset
from aisec.targets import SklearnTarget


def nb_pipeline(data: Dataset) -> Any:
    """Word counts and multinomial naive Bayes: the per-token learner closest to Nelson's SpamBayes."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    return make_pipeline(CountVectorizer(), MultinomialNB()).fit(list(data.x_train), data.y_train.numpy())


@pytest.fixture(scope="session")
def spam_nb_target(spam_data: Dataset) -> SklearnTarget:
    return SklearnTarget(nb_pipeline(spam_data), name="spam-nb")
