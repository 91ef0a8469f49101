"""aisec's errors keep their message and attributes through pickle (process pools, Ray)."""

from __future__ import annotations

import pickle

import pytest

from aisec import errors

CASES = [
    errors.ConfigError("lira.mode: 'x' is not allowed"),
    errors.InputValidationError("x", "a (N, 64) array", "shape (3,)"),
    errors.UnsupportedTargetError("lira needs probabilities", missing=["probabilities"]),
    errors.AccessDeniedError("gradients are not granted"),
    errors.UntrustedFileError("model.pkl runs code when loaded"),
    errors.BudgetExceededError(100, 90, 20),
    errors.BudgetExceededError(100, 0, 150, detail="75 members need 150 queries"),
    errors.TargetUnavailableError("http://127.0.0.1:1 refused the connection"),
    errors.MissingDependencyError("ray", "ray"),
]


def test_every_error_class_is_covered() -> None:
    assert {type(e).__name__ for e in CASES} == set(errors.__all__) - {"AisecError"}


@pytest.mark.parametrize("err", CASES, ids=lambda e: type(e).__name__)
def test_an_error_round_trips_through_pickle(err: errors.AisecError) -> None:
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err) and back.args == err.args
    assert vars(back) == vars(err)
