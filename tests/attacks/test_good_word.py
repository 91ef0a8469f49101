"""Good-word attack (Lowd & Meek 2005) on the SMS spam filter and the inline text target.

Strength measured before it was asserted (seeds 0-4, default config, SMS filter of the fixtures):
best-N by queries evades 57-64% of detected spam with 5 words, 94-96% with 10, 100% with 20;
passive frequency ranking 41-56% / 79-93% / 100%; random words 3-18% / 8-37% / 36-58%.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import aisec.attacks.integrity.good_word  # noqa: F401  (registers the attack until the lead adds it)
from aisec.attacks.base import AttackContext
from aisec.attacks.integrity.good_word import GoodWord, append_words, rank_by_frequency, words_of
from aisec.core.budget import QueryBudget
from aisec.data import Dataset
from aisec.errors import AccessDeniedError, ConfigError, InputValidationError
from aisec.targets import SklearnTarget


def test_words_are_ranked_by_their_ham_to_spam_ratio() -> None:
    texts = ["see you at lunch", "lunch at home", "win cash now", "win a prize at home"]
    ranked = rank_by_frequency(texts, torch.tensor([0, 0, 1, 1]), ham_class=0, min_count=1)
    assert ranked[0] == "lunch"  # twice in ham, never in spam
    assert "win" not in ranked and "cash" not in ranked  # spam-only words are no candidates
    assert ranked.index("lunch") < ranked.index("at")  # "at" occurs in spam too
    assert words_of("Call NOW 4 free!") == ["call", "now", "free"]
    assert append_words("win cash", ["lunch", "home"]) == "win cash lunch home"
    assert append_words("win cash", []) == "win cash"


@pytest.mark.parametrize("seed", [0, 3])
def test_good_words_let_most_spam_pass_and_beat_random_words(
    spam_target: SklearnTarget, spam_data: Dataset, seed: int
) -> None:
    ctx = AttackContext(seed=seed)
    best = GoodWord(selection="query").run(spam_target.view("black-box", "probabilities"), spam_data, ctx).metrics
    rand = GoodWord(selection="random").run(spam_target.view("black-box", "labels"), spam_data, ctx).metrics
    assert best["n"] >= 50 and best["n"] == rand["n"]  # the same detected spam is attacked
    assert best["evasion_rate_at_20"] >= 0.9
    assert best["evasion_rate_at_10"] >= 0.8
    assert best["evasion_rate_at_5"] >= rand["evasion_rate_at_5"] + 0.25
    assert best["evasion_rate_at_20"] >= rand["evasion_rate_at_20"] + 0.25
    for m in (best, rand):
        assert m["evasion_rate_at_5"] <= m["evasion_rate_at_10"] <= m["evasion_rate_at_20"] == m["evasion_rate"]
    assert 1 <= best["mean_words_added"] <= 20


def test_a_label_only_attacker_ranks_by_frequency_and_still_evades(
    spam_target: SklearnTarget, spam_data: Dataset
) -> None:
    view = spam_target.view("black-box", "labels")
    finding = GoodWord().run(view, spam_data, AttackContext(seed=0))
    assert "frequency selection" in finding.summary
    assert finding.metrics["evasion_rate_at_20"] >= 0.9
    assert finding.metrics["queries"] == finding.queries == view.queries
    first_n = GoodWord(selection="first-n").run(spam_target.view("black-box", "labels"), spam_data).metrics
    assert first_n["evasion_rate_at_20"] >= 0.9  # measured 1.0 on seeds 0-4
    with pytest.raises(AccessDeniedError):
        GoodWord(selection="query").run(spam_target.view("black-box", "labels"), spam_data)


def test_the_evidence_messages_really_pass_the_filter(
    spam_target: SklearnTarget, spam_data: Dataset, tmp_path: Path
) -> None:
    ctx = AttackContext(seed=1, run_dir=tmp_path, job_id="gw")
    finding = GoodWord(max_words=10).run(spam_target.view("black-box", "probabilities"), spam_data, ctx)
    assert finding.metrics["evasion_rate"] > 0.5
    ev = np.load(tmp_path / finding.evidence["arrays"])
    original, adversarial = [str(t) for t in ev["original"]], [str(t) for t in ev["adversarial"]]
    assert len(original) == len(adversarial) == 20
    check = spam_target.view("white-box", "labels")
    assert check.predict(original).tolist() == [1] * 20  # detected spam ...
    assert check.predict(adversarial).tolist() == [0] * 20  # ... that passes once the words are added
    words = [str(w) for w in ev["words"]]
    for a, b in zip(original, adversarial, strict=True):
        added = b[len(a) :].split()
        assert b.startswith(a) and 1 <= len(added) <= 10 and added == words[: len(added)]


def test_the_attack_stops_at_the_budget_and_says_so(spam_target: SklearnTarget, spam_data: Dataset) -> None:
    budget = QueryBudget(600)
    view = spam_target.view("black-box", "probabilities", budget=budget)
    finding = GoodWord().run(view, spam_data, AttackContext(seed=0))
    assert budget.used <= 600
    assert any("budget exhausted" in f for f in finding.flags)
    assert 0 < finding.metrics["n"] < finding.metrics["n_spam"]


def test_max_words_bounds_the_reported_counts(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    m = (
        GoodWord(max_words=7, word_source="train")
        .run(tiny_text_target.view("black-box", "probabilities"), tiny_text)
        .metrics
    )
    assert "evasion_rate_at_5" in m and "evasion_rate_at_10" not in m
    assert m["n"] == 5  # every held-out spam message of the inline set is detected and attacked


def test_bad_parameters_are_refused(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    for bad in ({"max_words": 0}, {"selection": "best"}, {"word_source": "web"}, {"n_samples": 0}, {"ham_class": -1}):
        with pytest.raises(ConfigError):
            GoodWord(**bad)
    with pytest.raises(InputValidationError, match="ham_class"):
        GoodWord(ham_class=2).run(tiny_text_target.view("black-box", "probabilities"), tiny_text)
