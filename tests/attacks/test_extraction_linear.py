"""Equation-solving extraction is exact on logistic models and honest on others; the word recovery
reads a linear text filter's spam words off its API."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import aisec
from aisec.attacks.confidentiality.equation_solving import EquationSolving
from aisec.attacks.confidentiality.text_words import TextWords
from aisec.errors import AccessDeniedError, BudgetExceededError

SMS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sms_spam" / "SMSSpamCollection"


def test_binary_logistic_regression_is_recovered_exactly_from_d_plus_1_queries(cancer, cancer_sklearn_target) -> None:  # type: ignore[no-untyped-def]
    view = cancer_sklearn_target.view("black-box", "probabilities", budget=31)
    finding = EquationSolving(check_queries=0).run(view, cancer)
    assert finding.queries == 31  # d + 1
    assert finding.metrics["max_parameter_error"] < 1e-6
    assert finding.metrics["max_probability_error"] < 1e-6
    assert finding.metrics["fidelity"] == 1.0


def test_multiclass_softmax_is_recovered_up_to_its_shift(digits) -> None:  # type: ignore[no-untyped-def]
    est = LogisticRegression(max_iter=3000).fit(
        digits.x_train.reshape(len(digits.x_train), -1).numpy(), digits.y_train.numpy()
    )
    target = aisec.SklearnTarget(est, modality="image", input_shape=(1, 8, 8), clip=(0.0, 1.0))
    finding = EquationSolving().run(target.view("black-box", "probabilities", budget=100), digits)
    assert finding.metrics["max_parameter_error"] < 1e-6 and finding.metrics["fidelity"] == 1.0
    assert finding.metrics["linear_logistic"] is True and finding.flags == []


def test_a_non_linear_target_is_flagged_not_claimed(digits, digits_cnn_target) -> None:  # type: ignore[no-untyped-def]
    finding = EquationSolving().run(digits_cnn_target.view("black-box", "probabilities", budget=200), digits)
    assert finding.metrics["linear_logistic"] is False
    assert finding.metrics["fit_residual"] > 1e-2
    assert any("not linear-logistic" in f for f in finding.flags)
    assert finding.metrics["max_parameter_error"] is None  # no parameters to compare with


def test_labels_only_api_refuses_and_budget_holds(cancer, cancer_sklearn_target) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDeniedError):
        EquationSolving().run(cancer_sklearn_target.view("black-box", "labels"), cancer)
    with pytest.raises(BudgetExceededError):
        EquationSolving().run(cancer_sklearn_target.view("black-box", "probabilities", budget=30), cancer)


def _filter(texts: list[str], labels: list[int]):  # type: ignore[no-untyped-def]
    return make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000)).fit(
        texts, labels
    )


def test_word_weights_are_read_off_a_tfidf_filter(tiny_text_target) -> None:  # type: ignore[no-untyped-def]
    ds = aisec.load_sms_spam(SMS) if SMS.is_file() else None
    if ds is None:
        pytest.skip(f"SMS Spam Collection not found at {SMS}")
    pipe = _filter(ds.x_train, ds.y_train.tolist())
    target = aisec.SklearnTarget(pipe)
    finding = TextWords().run(target.view("black-box", "probabilities", budget=5000), ds)
    m = finding.metrics
    assert m["max_weight_error"] < 1e-9 and m["sign_agreement"] == 1.0 and m["rank_correlation"] > 0.999
    assert m["top_k_overlap"] >= 0.9  # measured 0.92; the rest are words absent from the attacker's public text
    assert m["top_k_overlap"] == pytest.approx(m["true_top_in_candidates"])
    assert finding.queries == m["candidates"] + 1


def test_word_recovery_stays_within_the_budget(spam_like_data) -> None:  # type: ignore[no-untyped-def]
    ds = spam_like_data
    target = aisec.SklearnTarget(_filter(ds.x_train, ds.y_train.tolist()))
    view = target.view("black-box", "probabilities", budget=10)  # fewer than the 26 words of its public text
    finding = TextWords(top_k=5).run(view, ds)
    assert finding.queries == 10 and finding.metrics["candidates"] == 9


@pytest.fixture
def spam_like_data() -> aisec.Dataset:
    ham = [f"see you at {w} tonight love" for w in ("home", "work", "lunch", "six", "the pub", "mum's")] * 4
    spam = [
        f"free {w} call now to claim your prize txt win"
        for w in ("cash", "ringtone", "holiday", "phone", "award", "voucher")
    ] * 4
    texts = ham + spam
    y = torch.tensor([0] * len(ham) + [1] * len(spam))
    idx = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0))
    texts = [texts[i] for i in idx]
    y = y[idx]
    return aisec.Dataset(
        name="spam-like", modality=aisec.Modality.TEXT, x_train=texts[:30], y_train=y[:30], x_test=texts[30:],
        y_test=y[30:], class_names=("ham", "spam"),
    )  # fmt: skip
