"""RONI (reject on negative impact) against Nelson's dictionary attack on the SMS filter."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from aisec.attacks.availability.dictionary import build_dictionary, dictionary_poison, filter_rates
from aisec.data import Dataset
from aisec.defenses.data import roni as roni_mod
from aisec.defenses.data.roni import RoniConfig, detection_scores, roni, roni_filter
from aisec.errors import ConfigError, InputValidationError
from aisec.targets.recipe import SklearnRecipe


def test_fast_impacts_match_refitting_naive_bayes(tiny_text: Dataset) -> None:
    x, y = list(tiny_text.x_train), tiny_text.y_train.numpy()
    vec = CountVectorizer().fit(x)
    mat = vec.transform(x).tocsr()
    order = np.random.default_rng(0).permutation(len(x))  # both classes in every part
    b, v, c = order[:12], order[12:24], order[24:]
    fast = roni_mod._nb_impacts(mat[b], y[b], mat[v], y[v], mat[c], y[c], 2, 1.0, "log-likelihood", False)
    learner = make_pipeline(CountVectorizer(vocabulary=vec.vocabulary_), MultinomialNB())
    slow = roni_mod._refit_impacts(
        learner, [x[i] for i in b], y[b], [x[i] for i in v], y[v], [x[i] for i in c], y[c], "log-likelihood"
    )
    # the fast model smooths the class prior by one message, scikit-learn does not
    np.testing.assert_allclose(fast, slow, atol=0.02)


def test_config_and_inputs_are_checked(tiny_text: Dataset) -> None:
    for bad in ({"base_size": 0}, {"reject_quantile": 2.0}, {"score": "auc"}, {"model": "x"}, {"alpha": 0}):
        with pytest.raises(ConfigError):
            RoniConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="trusted_x"):
        roni(list(tiny_text.x_train), tiny_text.y_train, ["a"], [1])
    scores = detection_scores(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    assert (scores["precision"], scores["recall"]) == (0.5, 0.5)


def test_roni_catches_dictionary_poison_and_restores_ham(spam_data: Dataset) -> None:
    # measured (5% poison, whole 200-word ham dictionary, 900 trusted): precision 0.79, recall 1.0 in 1.3 s (0.95 with 1,000 trusted);
    # naive Bayes ham rejection 0.037 poisoned, 0.0033 clean
    x, y = list(spam_data.x_train), spam_data.y_train
    words = build_dictionary(x, y, size=200)
    ps = dictionary_poison(x, y, fraction=0.05, dictionary=words, seed=0)
    rng = np.random.default_rng(0)
    trusted = np.zeros(len(ps.y), bool)
    trusted[rng.choice(np.flatnonzero(~ps.poisoned), 900, replace=False)] = True
    result, scores = roni_filter(ps, trusted, RoniConfig(base_size=300, calib_size=400, score="accuracy"))
    assert scores["precision"] >= 0.7 and scores["recall"] >= 0.95
    assert not result.rejected[trusted].any()
    assert result.seconds < 10
    recipe = SklearnRecipe(make_pipeline(CountVectorizer(), MultinomialNB()))
    x_test = list(spam_data.x_test)

    def ham_rejection(xs: object, ys: object) -> float:
        model = recipe.fit(xs, ys)  # type: ignore[arg-type]
        return filter_rates(model.view("white-box", "labels").predict(x_test), spam_data.y_test, 1)[0]

    clean = ham_rejection(x, y)
    poisoned = ham_rejection(ps.x, ps.y)
    defended = ham_rejection(*ps.without(result.rejected))
    assert poisoned >= clean + 0.015
    assert defended <= clean + 0.005
