"""Nelson et al.'s dictionary attack: the poisoned set, and ham rejection on the SMS filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.core.findings import Finding
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError, UnsupportedTargetError
from aisec.targets import SklearnTarget
from aisec.targets.recipe import recipe_for


def test_build_dictionary_ranks_ham_words_by_document_frequency() -> None:
    from aisec.attacks.availability.dictionary import (  # registers on use, not at collection (see conftest)
        build_dictionary,
    )

    texts = ["ok see you", "ok you there", "ok lunch", "free prize ok"]
    labels = torch.tensor([0, 0, 0, 1])
    assert build_dictionary(texts, labels, size=2) == ["ok", "you"]
    assert "free" not in build_dictionary(texts, labels, size=None)
    assert "free" in build_dictionary(texts, labels, source="all", size=None)
    with pytest.raises(InputValidationError, match="source"):
        build_dictionary(texts, labels, source="spam")


def test_dictionary_poison_appends_spam_labelled_dictionary_messages(tiny_text: Dataset) -> None:
    from aisec.attacks.availability.dictionary import (  # registers on use, not at collection (see conftest)
        dictionary_poison,
    )

    x, y = list(tiny_text.x_train), tiny_text.y_train
    words = ["alpha", "beta", "gamma", "delta"]
    ps = dictionary_poison(x, y, fraction=0.2, dictionary=words, words_per_message=2, seed=3)
    n = len(x)
    assert ps.n_poison == round(0.2 * n / 0.8) and abs(ps.fraction - 0.2) < 0.02
    assert list(ps.x[:n]) == x and torch.equal(ps.y[:n], y)
    assert not ps.poisoned[:n].any() and ps.poisoned[n:].all()
    assert (ps.y[n:] == 1).all()
    assert all(len(t.split()) == 2 and set(t.split()) <= set(words) for t in ps.x[n:])
    whole = dictionary_poison(x, y, fraction=0.2, dictionary=words, seed=3)
    assert all(sorted(t.split()) == sorted(words) for t in whole.x[n:])
    again = dictionary_poison(x, y, fraction=0.2, dictionary=words, words_per_message=2, seed=3)
    assert list(again.x) == list(ps.x)
    for bad in ({"fraction": 0.0}, {"fraction": 1.0}, {"dictionary": []}, {"words_per_message": 0}):
        with pytest.raises(InputValidationError):
            dictionary_poison(x, y, **{"fraction": 0.1, **bad})  # type: ignore[arg-type]


def test_config_is_checked() -> None:
    from aisec.attacks.availability.dictionary import (  # registers on use, not at collection (see conftest)
        DictionaryAttack,
    )

    for bad in ({"fraction": 0.0}, {"fractions": []}, {"fractions": [0.1, 1.5]}, {"source": "spam"},
                {"dictionary_size": 0}, {"words_per_message": -1}):  # fmt: skip
        with pytest.raises(ConfigError):
            DictionaryAttack(**bad)
    assert DictionaryAttack(fractions=[0.1, 0.01]).config.fractions == (0.01, 0.1)


def test_runs_only_with_a_recipe_and_returns_a_finding(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    from aisec.attacks.availability.dictionary import (  # registers on use, not at collection (see conftest)
        DictionaryAttack,
    )

    view = tiny_text_target.view("black-box", "labels")
    with pytest.raises(UnsupportedTargetError, match="recipe"):
        DictionaryAttack().run(view, tiny_text)
    steps: list[tuple[int, int]] = []
    ctx = AttackContext(seed=1, recipe=recipe_for(tiny_text_target), progress=lambda d, t: steps.append((d, t)))
    f = DictionaryAttack(fractions=[0.05, 0.1]).run(view, tiny_text, ctx)
    assert Finding.from_json(f.to_json()) == f
    assert f.metrics["poison_fraction"] == 0.1 and len(f.metrics["curve"]) == 2
    assert steps[-1] == (3, 3) and f.queries == 0


def test_dictionary_attack_raises_ham_rejection_of_the_sms_filter(
    spam_target: SklearnTarget, spam_data: Dataset
) -> None:
    # measured (seeds 0-2, 10% poison): ham rejection 0.012 vs 0.0008 clean, ham spam score 0.097 vs 0.055
    from aisec.attacks.availability.dictionary import (  # registers on use, not at collection (see conftest)
        DictionaryAttack,
    )

    ctx = AttackContext(seed=0, recipe=recipe_for(spam_target))
    f = DictionaryAttack(fraction=0.1).run(spam_target.view("black-box", "labels"), spam_data, ctx)
    m = f.metrics
    assert m["ham_rejection_rate"] >= max(0.006, 5 * m["baseline_ham_rejection_rate"])
    assert m["ham_spam_score"] >= m["baseline_ham_spam_score"] + 0.02


def test_naive_bayes_filter_rejects_much_more_ham(spam_nb_target: SklearnTarget, spam_data: Dataset) -> None:
    # measured: 5% poison of a whole 200-word ham dictionary -> 0.037 ham rejected (clean 0.0033)
    from aisec.attacks.availability.dictionary import (  # registers on use, not at collection (see conftest)
        DictionaryAttack,
    )

    ctx = AttackContext(seed=0, recipe=recipe_for(spam_nb_target))
    attack = DictionaryAttack(fraction=0.05, dictionary_size=200, words_per_message=None)
    m = attack.run(spam_nb_target.view("black-box", "labels"), spam_data, ctx).metrics
    assert m["ham_rejection_rate"] >= 0.02 >= 3 * m["baseline_ham_rejection_rate"]
    assert np.isfinite(m["spam_detection_rate"])
