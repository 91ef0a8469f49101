"""Greedy word-level edits (DeepWordBug-style) against the SMS filter and the inline text target.

Strength measured before it was asserted (whole SMS test split, spam only, seeds 0-2 give the same
split): with 5 edits 93% of detected spam is flipped to ham, 2.5 edits on average; with 1 edit
about 20% (n=13 on a 200-message draw); ham -> spam flips stay rare (14% with 5 edits).
"""

from __future__ import annotations

from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest

import aisec.attacks.integrity.word_edit  # noqa: F401  (registers the attack until the lead adds it)
from aisec.attacks.base import AttackContext
from aisec.attacks.integrity.word_edit import WordEdit, char_variants
from aisec.core.budget import QueryBudget
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.targets import SklearnTarget


def test_character_variants_stay_close_to_the_word() -> None:
    variants = char_variants("free")
    assert "fr3e" in variants and "fr.ee" in variants
    assert "free" not in variants and len(variants) == len(set(variants))
    assert all(abs(len(v) - 4) <= 1 for v in variants)
    assert char_variants("x") == []


def _edited_words(a: str, b: str) -> int:
    """Words of ``a`` changed or dropped in ``b``."""
    wa, wb = a.split(), b.split()
    kept = sum(block.size for block in SequenceMatcher(a=wa, b=wb, autojunk=False).get_matching_blocks())
    return len(wa) - kept


def test_a_few_edits_flip_most_spam_and_the_evidence_holds(
    spam_target: SklearnTarget, spam_data: Dataset, tmp_path: Path
) -> None:
    view = spam_target.view("black-box", "probabilities")
    ctx = AttackContext(seed=0, run_dir=tmp_path, job_id="we")
    finding = WordEdit(source_class=1, n_samples=None).run(view, spam_data, ctx)
    m = finding.metrics
    assert m["n"] >= 100
    assert m["evasion_rate"] >= 0.8
    assert 1 <= m["mean_edits"] <= 5
    assert m["queries"] == finding.queries == view.queries
    ev = np.load(tmp_path / finding.evidence["arrays"])
    original, adversarial = [str(t) for t in ev["original"]], [str(t) for t in ev["adversarial"]]
    assert len(original) == 20
    check = spam_target.view("white-box", "labels")
    assert check.predict(original).tolist() == [1] * 20
    assert check.predict(adversarial).tolist() == [0] * 20
    assert all(1 <= _edited_words(a, b) <= 5 for a, b in zip(original, adversarial, strict=True))


def test_a_larger_edit_budget_never_does_worse(spam_target: SklearnTarget, spam_data: Dataset) -> None:
    rates = [
        WordEdit(source_class=1, max_edits=k)
        .run(spam_target.view("black-box", "probabilities"), spam_data)
        .metrics["evasion_rate"]
        for k in (1, 3, 5)
    ]
    assert rates == sorted(rates) and rates[-1] > rates[0]


def test_deletion_only_and_substitution_only_both_work(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    for mode in ("delete", "substitute"):
        m = WordEdit(mode=mode).run(tiny_text_target.view("black-box", "probabilities"), tiny_text).metrics
        assert m["n"] == 8 and m["evasion_rate"] >= 0.5, (mode, m)


def test_the_attack_stops_at_the_budget_and_says_so(spam_target: SklearnTarget, spam_data: Dataset) -> None:
    budget = QueryBudget(300)
    finding = WordEdit(source_class=1).run(spam_target.view("black-box", "probabilities", budget=budget), spam_data)
    assert budget.used <= 300
    assert any("budget exhausted" in f for f in finding.flags)


def test_bad_parameters_are_refused(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    for bad in ({"max_edits": 0}, {"mode": "swap"}, {"max_tries": 0}, {"source_class": -1}, {"n_samples": 0}):
        with pytest.raises(ConfigError):
            WordEdit(**bad)
    with pytest.raises(InputValidationError, match="source_class"):
        WordEdit(source_class=5).run(tiny_text_target.view("black-box", "probabilities"), tiny_text)
