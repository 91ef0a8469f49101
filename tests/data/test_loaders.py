"""Data loaders and splits: bundled sets, the SMS file, npz and csv; seeded and disjoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aisec.core.goals import Modality
from aisec.data import Dataset, load_breast_cancer, load_csv, load_digits, load_npz, load_sms_spam
from aisec.errors import ConfigError, InputValidationError
from tests.helpers import SMS_SPAM_PATH


def _rows(x: torch.Tensor | list[str]) -> set:
    if isinstance(x, torch.Tensor):
        return {tuple(r.flatten().tolist()) for r in x}
    return set(x)


def test_digits_are_1x8x8_images_in_the_unit_range(digits: Dataset) -> None:
    assert digits.modality is Modality.IMAGE
    assert isinstance(digits.x_train, torch.Tensor) and isinstance(digits.x_test, torch.Tensor)
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.input_shape == (1, 8, 8)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.long
    assert float(digits.x_train.min()) == 0.0 and float(digits.x_train.max()) == 1.0
    assert digits.clip == (0.0, 1.0)
    assert digits.n_classes == 10
    assert len(digits.y_test) == pytest.approx(0.25 * 1797, abs=1)


def test_breast_cancer_is_standardized_on_the_training_split(cancer: Dataset) -> None:
    assert cancer.modality is Modality.TABULAR
    assert isinstance(cancer.x_train, torch.Tensor) and isinstance(cancer.x_test, torch.Tensor)
    assert cancer.x_train.shape[1:] == (30,)
    assert cancer.class_names == ("malignant", "benign")
    torch.testing.assert_close(cancer.x_train.mean(0), torch.zeros(30), atol=1e-4, rtol=0)
    torch.testing.assert_close(cancer.x_train.std(0, unbiased=False), torch.ones(30), atol=1e-3, rtol=0)
    assert cancer.x_test.mean(0).abs().max() > 1e-3  # the test split was not used for the statistics
    assert cancer.clip is None


def test_split_is_stratified(digits: Dataset) -> None:
    train_share = torch.bincount(digits.y_train, minlength=10) / len(digits.y_train)
    test_share = torch.bincount(digits.y_test, minlength=10) / len(digits.y_test)
    assert (train_share - test_share).abs().max() < 0.01


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer])
def test_split_is_reproducible_for_a_seed_and_differs_for_another(loader) -> None:  # type: ignore[no-untyped-def]
    a, b, c = loader(seed=1), loader(seed=1), loader(seed=2)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_test, c.x_test)
    assert not _rows(a.x_train) & _rows(a.x_test)


def test_test_size_is_honoured_and_checked() -> None:
    assert len(load_digits(test_size=0.5).y_test) == pytest.approx(1797 / 2, abs=1)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="test_size"):
            load_digits(test_size=bad)


def test_test_subset_is_seeded_and_bounded(digits: Dataset) -> None:
    x1, y1 = digits.test_subset(50, seed=3)
    x2, _ = digits.test_subset(50, seed=3)
    x3, _ = digits.test_subset(50, seed=4)
    assert len(y1) == 50 and torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert _rows(x1) <= _rows(digits.x_test)
    x_all, _ = digits.test_subset(None, seed=0)
    assert x_all is digits.x_test
    assert len(digits.test_subset(10_000, seed=0)[1]) == len(digits.y_test)


@pytest.mark.parametrize("n", [None, 40])
def test_membership_split_is_disjoint_and_balanced(digits: Dataset, n: int | None) -> None:
    split = digits.membership_split(n, seed=5)
    (x_in, y_in), (x_out, y_out), (x_pop, y_pop) = split.members, split.non_members, split.population
    assert len(y_in) == len(y_out)
    if n is not None:
        assert len(y_in) == n
    else:
        assert len(y_out) == len(digits.y_test) - len(digits.y_test) // 2
    assert len(y_pop) == len(digits.y_test) // 2
    # members come from training, the others from the held-out split, and never overlap
    assert _rows(x_in) <= _rows(digits.x_train)
    assert _rows(x_out) <= _rows(digits.x_test) and _rows(x_pop) <= _rows(digits.x_test)
    idx = split.indices
    assert not set(idx["non_members_test"]) & set(idx["population_test"])
    assert len(set(idx["members_train"])) == len(y_in)
    assert torch.equal(y_in, digits.y_train[torch.as_tensor(idx["members_train"])])
    assert torch.equal(y_pop, digits.y_test[torch.as_tensor(idx["population_test"])])
    again = digits.membership_split(n, seed=5)
    assert all(np.array_equal(idx[k], again.indices[k]) for k in idx)


def test_membership_split_of_text(tiny_text: Dataset) -> None:
    split = tiny_text.membership_split(None, seed=0)
    assert isinstance(split.members[0], list)
    assert len(split.members[0]) == len(split.non_members[0])
    assert not set(split.non_members[0]) & set(split.population[0])
    assert set(split.members[0]) <= set(tiny_text.x_train)


def test_dataset_checks_its_labels() -> None:
    x = torch.zeros(4, 3)
    with pytest.raises(InputValidationError, match="x_train"):
        Dataset(
            "d", Modality.TABULAR, x, torch.zeros(3, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), ("a", "b")
        )
    with pytest.raises(InputValidationError, match="y_test"):
        Dataset("d", Modality.TABULAR, x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4), ("a", "b"))
    with pytest.raises(InputValidationError, match=r"labels in 0\.\.1"):
        Dataset("d", Modality.TABULAR, x, torch.full((4,), 2), x, torch.zeros(4, dtype=torch.long), ("a", "b"))


# -- npz ------------------------------------------------------------------------------------------


def test_npz_with_a_given_split_is_used_as_is(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.random((20, 1, 4, 4)),
        "y_train": rng.integers(0, 3, 20),
        "x_test": rng.random((8, 1, 4, 4)),
        "y_test": np.array([0, 1, 2, 0, 1, 2, 0, 1]),
    }
    np.savez(tmp_path / "split.npz", **arrays)
    ds = load_npz(tmp_path / "split.npz", clip=(0.0, 1.0))
    assert ds.modality is Modality.IMAGE
    assert ds.name == "split"
    assert ds.n_classes == 3
    assert ds.clip == (0.0, 1.0)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.long
    np.testing.assert_allclose(ds.x_test.numpy(), arrays["x_test"].astype(np.float32))
    assert ds.y_test.tolist() == arrays["y_test"].tolist()


def test_npz_with_x_and_y_is_split_here(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((40, 5))
    y = np.array([0, 1] * 20)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    ds = load_npz(tmp_path / "xy.npz", test_size=0.25, seed=3)
    assert ds.modality is Modality.TABULAR
    assert (len(ds.y_train), len(ds.y_test)) == (30, 10)
    assert _rows(ds.x_train) | _rows(ds.x_test) == _rows(torch.from_numpy(x.astype(np.float32)))
    assert torch.equal(load_npz(tmp_path / "xy.npz", seed=3).x_test, ds.x_test)


def test_npz_with_object_arrays_is_refused(tmp_path: Path) -> None:
    objects = np.array([{"a": 1}, {"b": 2}], dtype=object)
    np.savez(tmp_path / "evil.npz", x=objects, y=np.array([0, 1]))
    with pytest.raises(ConfigError, match="object arrays are refused"):
        load_npz(tmp_path / "evil.npz")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"a": np.zeros(3)}, "must hold x_train, y_train, x_test, y_test or x, y"),
        (b"not an npz", "not a .npz file"),
        (b"PK\x03\x04broken", "not a readable .npz file"),
    ],
)
def test_npz_errors(tmp_path: Path, content: dict | bytes, match: str) -> None:
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    with pytest.raises(ConfigError, match=match):
        load_npz(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_npz(tmp_path / "missing.npz")


# -- csv ------------------------------------------------------------------------------------------


def _write_csv(path: Path, n: int = 24, label: str = "label", trailing: str = "") -> None:
    lines = [f"a,b,{label},c"]
    for i in range(n):
        lines.append(f"{i},{i * 2.5},{'yes' if i % 2 else 'no'},{-i}")
    path.write_text("\n".join(lines) + "\n" + trailing)


def test_csv_with_a_label_column(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    _write_csv(path, label="target")
    ds = load_csv(path, label_column="target", standardize=False, seed=0)
    assert ds.modality is Modality.TABULAR
    assert ds.class_names == ("no", "yes")
    assert ds.input_shape == (3,)
    assert len(ds.y_train) + len(ds.y_test) == 24
    # the label column is not a feature, and labels follow their rows
    for x, y in zip(ds.x_train, ds.y_train, strict=True):
        a, b, c = x.tolist()
        assert b == pytest.approx(a * 2.5) and c == -a
        assert y.item() == int(a) % 2


def test_csv_standardizes_by_default(tmp_path: Path) -> None:
    _write_csv(tmp_path / "t.csv")
    ds = load_csv(tmp_path / "t.csv")
    torch.testing.assert_close(ds.x_train.mean(0), torch.zeros(3), atol=1e-5, rtol=0)


def test_csv_unknown_label_column_lists_the_columns(tmp_path: Path) -> None:
    _write_csv(tmp_path / "t.csv")
    with pytest.raises(ConfigError, match=r"data.label_column: 'class' is not a column .*; columns: a, b, label, c"):
        load_csv(tmp_path / "t.csv", label_column="class")


def test_csv_with_text_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,x\nhello,y\n3,x\n4,y\n")
    with pytest.raises(InputValidationError, match="numeric feature columns"):
        load_csv(path)


def test_csv_tolerates_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _write_csv(path, trailing="\n\n")
    assert len(load_csv(path).y_train) + len(load_csv(path).y_test) == 24


# -- the SMS Spam Collection ----------------------------------------------------------------------


def test_sms_spam_from_the_shared_folder() -> None:
    if not SMS_SPAM_PATH.is_file():
        pytest.skip(f"SMS Spam Collection not found at {SMS_SPAM_PATH}")
    ds = load_sms_spam(SMS_SPAM_PATH)
    assert ds.modality is Modality.TEXT
    assert ds.class_names == ("ham", "spam")
    assert isinstance(ds.x_train, list) and all(isinstance(t, str) for t in ds.x_train)
    y = torch.cat([ds.y_train, ds.y_test])
    assert len(y) == 5574
    assert int(y.sum()) == 747  # spam, per the file's README
    assert ds.input_shape is None
    assert load_sms_spam(SMS_SPAM_PATH, seed=1).x_test != ds.x_test


def test_sms_spam_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_sms_spam(tmp_path / "missing")
    bad = tmp_path / "bad.txt"
    bad.write_text("ham\thello\nmaybe\tsomething\n")
    with pytest.raises(ConfigError, match=r"bad.txt:2: expected"):
        load_sms_spam(bad)
