"""Target views: an attacker gets exactly what its threat model allows, and pays for every query."""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from aisec.core.budget import QueryBudget
from aisec.core.goals import Capability, Knowledge, OutputKind
from aisec.data import Dataset
from aisec.errors import (
    AccessDeniedError,
    BudgetExceededError,
    ConfigError,
    InputValidationError,
    UnsupportedTargetError,
    UntrustedFileError,
)
from aisec.targets import SklearnTarget, TorchTarget
from tests.helpers import CancerMLP

C = Capability


class CallCounter(nn.Module):
    """Wraps a model and counts how often it is called."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


# -- what each view grants ------------------------------------------------------------------------


@pytest.mark.parametrize("knowledge", ["black-box", "grey-box"])
@pytest.mark.parametrize("output", ["probabilities", "top-k", "labels"])
def test_non_white_box_views_refuse_model_and_parameters(
    digits_cnn_target: TorchTarget, knowledge: str, output: str
) -> None:
    view = digits_cnn_target.view(knowledge, output)
    with pytest.raises(AccessDeniedError, match=knowledge):
        _ = view.model
    with pytest.raises(AccessDeniedError, match=knowledge):
        _ = view.parameters
    assert C.GRADIENTS not in view.capabilities
    assert view.queries == 0


def test_sklearn_non_white_box_parameters_are_denied(cancer_sklearn_target: SklearnTarget) -> None:
    with pytest.raises(AccessDeniedError):
        _ = cancer_sklearn_target.view("black-box", "probabilities").parameters


@pytest.mark.parametrize("knowledge", ["black-box", "grey-box"])
def test_labels_only_output_refuses_probabilities_without_charging(
    digits_cnn_target: TorchTarget, digits: Dataset, knowledge: str
) -> None:
    view = digits_cnn_target.view(knowledge, "labels", budget=100)
    with pytest.raises(AccessDeniedError, match="probabilities"):
        view.predict_proba(digits.x_test[:5])
    assert view.queries == 0
    labels = view.predict(digits.x_test[:5])
    assert labels.dtype == torch.long and labels.shape == (5,)
    assert view.capabilities == {C.LABELS}


def test_the_assessors_checks_are_counted_apart_from_the_budget(
    digits_cnn_target: TorchTarget, digits: Dataset
) -> None:
    view = digits_cnn_target.view("black-box", "labels", budget=5)
    view.predict(digits.x_test[:3])
    checks = view.evaluation_view()
    checks.predict_proba(digits.x_test[:40])  # the assessor scores with probabilities, past the attacker's budget
    checks.evaluation_view().predict(digits.x_test[:2])  # a check's own check is counted in the same place
    assert (view.queries, view.budget.remaining, view.check_queries) == (3, 2, 42)
    assert digits_cnn_target.view("black-box", "labels").check_queries == 0  # per view, not per target


def test_white_box_gets_a_differentiable_model_and_pays_no_queries(
    digits_cnn_target: TorchTarget, digits_cnn: nn.Module, digits: Dataset
) -> None:
    view = digits_cnn_target.view("white-box", "labels", budget=0)
    assert {C.GRADIENTS, C.PARAMETERS, C.PROBABILITIES} <= view.capabilities
    x = digits.x_test[:8].clone().requires_grad_(True)
    logits = view.model(x)
    assert logits.shape == (8, 10)
    loss = nn.functional.cross_entropy(logits, digits.y_test[:8])
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.shape == x.shape
    assert grad.abs().sum() > 0
    assert not view.model.training
    assert view.forward_passes == 8
    assert view.queries == 0
    assert view.parameters is digits_cnn


def test_sklearn_white_box_has_no_gradients_but_has_its_estimator(
    cancer_sklearn_target: SklearnTarget, cancer_sklearn: LogisticRegression
) -> None:
    view = cancer_sklearn_target.view("white-box", "probabilities")
    with pytest.raises(UnsupportedTargetError, match="gradients"):
        _ = view.model
    assert view.parameters is cancer_sklearn
    assert C.GRADIENTS not in view.capabilities


def test_require_tells_denied_from_unsupported(cancer_sklearn_target: SklearnTarget) -> None:
    view = cancer_sklearn_target.view("black-box", "labels")
    with pytest.raises(AccessDeniedError):
        view.require(C.PROBABILITIES)  # the target could, the threat model forbids
    with pytest.raises(UnsupportedTargetError) as info:
        cancer_sklearn_target.view("white-box", "probabilities").require(C.GRADIENTS)
    assert info.value.missing == ("gradients",)


def test_top_k_keeps_the_k_largest_and_zeroes_the_rest(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    x = digits.x_test[:50]
    full = digits_cnn_target.view("black-box", "probabilities").predict_proba(x)
    top3 = digits_cnn_target.view("black-box", "top-k", top_k=3).predict_proba(x)
    kept = top3 > 0
    assert (kept.sum(1) <= 3).all()
    expected = torch.zeros_like(full).scatter_(1, full.topk(3, dim=1).indices, full.topk(3, dim=1).values)
    torch.testing.assert_close(top3, expected)
    assert (top3.argmax(1) == full.argmax(1)).all()


def test_top_k_larger_than_the_classes_is_the_whole_vector(cancer_mlp_target: TorchTarget, cancer: Dataset) -> None:
    x = cancer.x_test[:10]
    full = cancer_mlp_target.view("black-box", "probabilities").predict_proba(x)
    torch.testing.assert_close(cancer_mlp_target.view("black-box", "top-k", top_k=5).predict_proba(x), full)


def test_top_k_must_be_positive(digits_cnn_target: TorchTarget) -> None:
    with pytest.raises(InputValidationError, match="top_k"):
        digits_cnn_target.view("black-box", "top-k", top_k=0)


def test_view_parses_knowledge_and_output(digits_cnn_target: TorchTarget) -> None:
    view = digits_cnn_target.view("Black_Box", "TOP_K")
    assert (view.knowledge, view.output) == (Knowledge.BLACK_BOX, OutputKind.TOP_K)
    with pytest.raises(ConfigError, match="allowed: white-box, grey-box, black-box"):
        digits_cnn_target.view("glass-box", "labels")


# -- queries and the budget -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_every_query_charges_len_x(cancer_mlp_target: TorchTarget, cancer: Dataset, method: str) -> None:
    view = cancer_mlp_target.view("black-box", "probabilities", budget=1000)
    getattr(view, method)(cancer.x_test[:7])
    getattr(view, method)(cancer.x_test[:13])
    getattr(view, method)(cancer.x_test[:0])
    assert view.queries == 20
    assert view.budget.remaining == 980


def test_white_box_predictions_are_queries_too(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    view = digits_cnn_target.view("white-box", "probabilities", budget=100)
    view.predict_proba(digits.x_test[:30])
    assert view.queries == 30


def test_a_shared_budget_is_charged_by_every_view(cancer_mlp_target: TorchTarget, cancer: Dataset) -> None:
    budget = QueryBudget(10)
    a = cancer_mlp_target.view("black-box", "probabilities", budget=budget)
    b = cancer_mlp_target.view("black-box", "labels", budget=budget)
    a.predict_proba(cancer.x_test[:6])
    with pytest.raises(BudgetExceededError):
        b.predict(cancer.x_test[:6])
    b.predict(cancer.x_test[:4])
    assert budget.used == 10


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_spent_budget_refuses_before_the_model_is_called(cancer_mlp: nn.Module, cancer: Dataset, method: str) -> None:
    counter = CallCounter(cancer_mlp)
    target = TorchTarget(counter, input_shape=(30,), n_classes=2, modality="tabular", device="cpu")
    view = target.view("black-box", "probabilities", budget=5)
    getattr(view, method)(cancer.x_test[:3])
    assert counter.calls == 1
    with pytest.raises(BudgetExceededError) as info:
        getattr(view, method)(cancer.x_test[:3])
    assert (info.value.limit, info.value.used, info.value.requested) == (5, 3, 3)
    assert counter.calls == 1
    assert view.queries == 3


def test_sklearn_budget_refuses_before_the_estimator_is_called(
    cancer_sklearn: LogisticRegression, cancer: Dataset
) -> None:
    calls = []

    class Spy:
        classes_ = cancer_sklearn.classes_

        def predict(self, x: np.ndarray) -> np.ndarray:
            calls.append(len(x))
            return cancer_sklearn.predict(x)

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            calls.append(len(x))
            return cancer_sklearn.predict_proba(x)

    view = SklearnTarget(Spy(), input_shape=(30,)).view("black-box", "probabilities", budget=4)
    view.predict_proba(cancer.x_test[:4])
    with pytest.raises(BudgetExceededError):
        view.predict(cancer.x_test[:1])
    assert calls == [4]


def test_predictions_agree_with_the_model(
    cancer_mlp_target: TorchTarget, cancer_mlp: nn.Module, cancer: Dataset
) -> None:
    view = cancer_mlp_target.view("black-box", "probabilities")
    x = cancer.x_test
    probs = view.predict_proba(x)
    with torch.no_grad():
        expected = cancer_mlp(x).softmax(1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(x)))
    assert (view.predict(x) == expected.argmax(1)).all()


def test_a_model_returning_probabilities_gives_log_probabilities_to_white_box(
    cancer_mlp: nn.Module, cancer: Dataset
) -> None:
    target = TorchTarget(
        nn.Sequential(cancer_mlp, nn.Softmax(dim=1)),
        input_shape=(30,),
        modality="tabular",
        outputs="probabilities",
        device="cpu",
    )
    view = target.view("white-box", "probabilities")
    x = cancer.x_test[:20]
    with torch.no_grad():
        torch.testing.assert_close(view.predict_proba(x), cancer_mlp(x).softmax(1))
        log_probs = view.model(x)
        torch.testing.assert_close(log_probs.exp(), cancer_mlp(x).softmax(1), atol=1e-6, rtol=1e-4)
        assert (log_probs.argmax(1) == cancer_mlp(x).argmax(1)).all()
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(view.model(x)[:, 0].sum(), x)
    assert grad.abs().sum() > 0


def test_sklearn_probabilities_and_labels(
    cancer_sklearn_target: SklearnTarget, cancer_sklearn: LogisticRegression, cancer: Dataset
) -> None:
    view = cancer_sklearn_target.view("black-box", "probabilities")
    x = cancer.x_test[:25]
    probs = view.predict_proba(x)
    assert probs.dtype == torch.float64 and probs.shape == (25, 2)  # the estimator's own precision, kept
    np.testing.assert_allclose(probs.numpy(), cancer_sklearn.predict_proba(x.numpy()), rtol=1e-5, atol=1e-6)
    assert (view.predict(x).numpy() == cancer_sklearn.predict(x.numpy())).all()


def test_text_target_takes_strings(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    view = tiny_text_target.view("black-box", "probabilities", budget=100)
    probs = view.predict_proba(["win a free prize now", "see you at lunch tomorrow"])
    assert probs.shape == (2, 2)
    assert view.predict(["claim your cash prize now call", "running late see you soon"]).tolist() == [1, 0]
    assert view.queries == 4
    assert (view.predict(tiny_text.x_test) == tiny_text.y_test).float().mean() >= 0.8


def test_spam_filter_on_the_sms_collection(spam_target: SklearnTarget, spam_data: Dataset) -> None:
    view = spam_target.view("black-box", "labels", budget=len(spam_data.y_test))
    accuracy = (view.predict(spam_data.x_test) == spam_data.y_test).float().mean().item()
    assert accuracy > 0.95  # TF-IDF + logistic regression: about 0.97
    assert view.budget.remaining == 0
    with pytest.raises(BudgetExceededError):
        view.predict(["one more"])


# -- input validation -----------------------------------------------------------------------------


def _nan_digits(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[0, 0, 3, 3] = float("nan")
    return x


BAD_IMAGES = {
    "wrong shape": (lambda x: x.reshape(len(x), 64), "shape (N, 1, 8, 8)"),
    "missing batch dimension": (lambda x: x[0], "shape (N, 1, 8, 8)"),
    "int dtype": (lambda x: (x * 16).long(), "floating-point"),
    "bool dtype": (lambda x: x > 0.5, "floating-point"),
    "above the clip range": (lambda x: x + 1.5, "values in [0.0, 1.0]"),
    "below the clip range": (lambda x: x - 0.5, "values in [0.0, 1.0]"),
    "NaN": (_nan_digits, "finite"),
    "a string": (lambda x: "an image", "a float tensor"),
    "a nested list": (lambda x: x.tolist(), "a float tensor"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
@pytest.mark.parametrize("method", ["predict", "predict_proba", "validate"])
def test_bad_numeric_input_is_refused_naming_the_argument_and_charges_nothing(
    digits_cnn: nn.Module, digits: Dataset, case: str, method: str
) -> None:
    counter = CallCounter(digits_cnn)
    target = TorchTarget(
        counter, input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0), device="cpu", memory_format="contiguous"
    )  # contiguous: the counter itself must answer, not a channels-last copy of it
    view = target.view("black-box", "probabilities", budget=100)
    make, expected = BAD_IMAGES[case]
    with pytest.raises(InputValidationError) as info:
        getattr(view, method)(make(digits.x_test[:4]))
    assert info.value.argument == "x"
    assert str(info.value).startswith("x: expected")
    assert expected in str(info.value)
    assert view.queries == 0
    assert counter.calls == 0


def test_validate_names_the_argument_it_is_given(digits_cnn_target: TorchTarget) -> None:
    view = digits_cnn_target.view("white-box", "probabilities")
    with pytest.raises(InputValidationError, match=r"^data\.x_test: "):
        view.validate(torch.zeros(2, 64), argument="data.x_test")


def test_valid_inputs_are_converted_to_float32(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    view = digits_cnn_target.view("black-box", "labels")
    x64 = digits.x_test[:3].numpy().astype(np.float64)
    out = view.validate(x64)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert (view.predict(x64) == view.predict(digits.x_test[:3])).all()


def test_tabular_without_clip_accepts_any_finite_value(cancer_mlp_target: TorchTarget) -> None:
    view = cancer_mlp_target.view("black-box", "labels")
    assert view.predict(torch.full((2, 30), 1e6)).shape == (2,)
    with pytest.raises(InputValidationError, match="finite"):
        view.predict(torch.full((2, 30), float("inf")))


@pytest.mark.parametrize(
    ("bad", "argument", "expected"),
    [
        ("just one string", "x", "a list of strings"),
        (torch.zeros(2, 3), "x", "a list of strings"),
        (["fine", 3], "x[1]", "a string"),
        (["fine", None, "also fine"], "x[1]", "a string"),
        ([b"bytes"], "x[0]", "a string"),
    ],
)
def test_text_target_refuses_non_strings(
    tiny_text_target: SklearnTarget, bad: object, argument: str, expected: str
) -> None:
    view = tiny_text_target.view("black-box", "probabilities", budget=10)
    with pytest.raises(InputValidationError) as info:
        view.predict_proba(bad)
    assert info.value.argument == argument
    assert expected in str(info.value)
    assert view.queries == 0


def test_numeric_sklearn_target_refuses_strings(cancer_sklearn_target: SklearnTarget) -> None:
    with pytest.raises(InputValidationError, match=r"^x: expected a float tensor"):
        cancer_sklearn_target.view("black-box", "labels").predict(["1.0"] * 30)


def test_target_constructor_checks(cancer_mlp: nn.Module, cancer_sklearn: LogisticRegression) -> None:
    with pytest.raises(InputValidationError, match="model"):
        TorchTarget("not a model", input_shape=(30,))  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="clip"):
        TorchTarget(cancer_mlp, input_shape=(30,), clip=(1.0, 0.0), device="cpu")
    with pytest.raises(ConfigError, match="outputs"):
        TorchTarget(cancer_mlp, input_shape=(30,), outputs="scores", device="cpu")  # type: ignore[arg-type]
    with pytest.raises(InputValidationError, match="estimator"):
        SklearnTarget(object(), input_shape=(30,))
    with pytest.raises(ConfigError, match="input_shape"):
        SklearnTarget(cancer_sklearn, modality="tabular")


def test_torch_target_infers_the_number_of_classes(cancer_mlp: nn.Module, digits_cnn_target: TorchTarget) -> None:
    assert TorchTarget(cancer_mlp, input_shape=(30,), modality="tabular", device="cpu").n_classes == 2
    assert digits_cnn_target.n_classes == 10


# -- loading model files --------------------------------------------------------------------------


@pytest.fixture
def trained_mlp(cancer_mlp: nn.Module) -> CancerMLP:
    """A fresh copy of the cancer MLP (CancerMLP is importable, so it can be pickled)."""
    model = CancerMLP()
    model.load_state_dict(cancer_mlp.state_dict())
    return model.eval()


def test_torchscript_file_loads_without_trust(trained_mlp: CancerMLP, cancer: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "mlp.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates TorchScript; aisec still loads it
        torch.jit.save(torch.jit.script(trained_mlp), str(path))
    target = TorchTarget.from_file(path, input_shape=(30,), modality="tabular", device="cpu")
    assert target.name == "mlp"
    assert target.n_classes == 2
    x = cancer.x_test[:20]
    with torch.no_grad():
        expected = trained_mlp(x).softmax(1)
    torch.testing.assert_close(target.view("black-box", "probabilities").predict_proba(x), expected)


def test_pickled_torch_model_is_refused_unless_trusted(trained_mlp: CancerMLP, cancer: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(trained_mlp, path)
    with pytest.raises(UntrustedFileError, match="trust"):
        TorchTarget.from_file(path, input_shape=(30,), modality="tabular", device="cpu")
    target = TorchTarget.from_file(path, trust=True, input_shape=(30,), modality="tabular", device="cpu")
    view = target.view("black-box", "labels")
    with torch.no_grad():
        assert (view.predict(cancer.x_test) == trained_mlp(cancer.x_test).argmax(1)).all()


def test_state_dict_file_is_a_config_error(trained_mlp: CancerMLP, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(trained_mlp.state_dict(), path)
    with pytest.raises(ConfigError, match="state_dict"):
        TorchTarget.from_file(path, trust=True, input_shape=(30,), device="cpu")


def test_unreadable_or_missing_model_files_are_config_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(UntrustedFileError):
        TorchTarget.from_file(junk, input_shape=(30,), device="cpu")
    with pytest.raises(ConfigError, match="not a readable torch model file"):
        TorchTarget.from_file(junk, trust=True, input_shape=(30,), device="cpu")
    with pytest.raises(ConfigError, match="no such file"):
        TorchTarget.from_file(tmp_path / "missing.pt", input_shape=(30,), device="cpu")


def test_joblib_is_refused_unless_trusted(cancer_sklearn: LogisticRegression, cancer: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "logreg.joblib"
    joblib.dump(cancer_sklearn, path)
    with pytest.raises(UntrustedFileError, match="trust"):
        SklearnTarget.from_file(path, input_shape=(30,))
    target = SklearnTarget.from_file(path, trust=True, input_shape=(30,))
    assert target.name == "logreg"
    x = cancer.x_test[:30]
    assert (target.view("black-box", "labels").predict(x).numpy() == cancer_sklearn.predict(x.numpy())).all()


def test_unreadable_or_missing_joblib_files_are_config_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(ConfigError, match="not a readable joblib"):
        SklearnTarget.from_file(junk, trust=True, input_shape=(30,))
    with pytest.raises(ConfigError, match="no such file"):
        SklearnTarget.from_file(tmp_path / "missing.joblib", trust=True, input_shape=(30,))
