"""Dataset loaders: scikit-learn's bundled sets, the SMS Spam Collection, ``.npz`` and ``.csv`` files.

Every loader takes ``test_size`` and ``seed`` and returns a :class:`~aisec.data.Dataset` whose split
is the same on every machine for the same arguments, so a model trained on ``load(...).x_train``
and the assessment agree on who is a member of the training data.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.core.goals import Modality
from aisec.data.dataset import DIGITS_8X8, Dataset, split_indices
from aisec.errors import ConfigError, InputValidationError

#: Places where the SMS Spam Collection is looked for when no path is given.
SMS_SPAM_CANDIDATES = (
    Path("SMSSpamCollection"),
    Path("data/sms_spam/SMSSpamCollection"),
    Path("../shared/data/sms_spam/SMSSpamCollection"),
)


def _check_split(test_size: float) -> None:
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"data.test_size: expected a number in (0, 1), got {test_size!r}")


def _numeric(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...],
    *,
    modality: Modality,
    test_size: float,
    seed: int,
    clip: tuple[float, float] | None,
    standardize: bool = False,
    meta: dict[str, Any] | None = None,
) -> Dataset:
    _check_split(test_size)
    train, test = split_indices(len(y), test_size, seed, stratify=y)
    x = x.astype(np.float32)
    if standardize:
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std[std == 0] = 1.0
        x = (x - mean) / std
    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(y.astype(np.int64))
    return Dataset(
        name=name,
        modality=modality,
        x_train=xt[train],
        y_train=yt[train],
        x_test=xt[test],
        y_test=yt[test],
        class_names=class_names,
        clip=clip,
        meta={"seed": seed, "test_size": test_size, **(meta or {})},
    )


def load_digits(*, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits as 1x8x8 images in [0, 1] (1,797 images, 10 classes)."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = (bunch.images / 16.0).reshape(-1, 1, 8, 8)
    names = tuple(str(c) for c in range(10))
    return _numeric(
        "digits",
        x,
        bunch.target,
        names,
        modality=Modality.IMAGE,
        test_size=test_size,
        seed=seed,
        clip=(0.0, 1.0),
        meta={"domain": DIGITS_8X8},
    )


def load_breast_cancer(*, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's breast cancer set (569 x 30), standardized with the training split's statistics."""
    from sklearn.datasets import load_breast_cancer as _load

    bunch = _load()
    names = tuple(str(n) for n in bunch.target_names)
    return _numeric(
        "breast_cancer",
        bunch.data,
        bunch.target,
        names,
        modality=Modality.TABULAR,
        test_size=test_size,
        seed=seed,
        clip=None,
        standardize=True,
    )


def find_sms_spam(path: str | Path | None = None) -> Path | None:
    """The SMS Spam Collection file: ``path`` if given, else the first candidate that exists."""
    if path is not None:
        return Path(path)
    for cand in SMS_SPAM_CANDIDATES:
        if cand.is_file():
            return cand
    return None


def load_sms_spam(path: str | Path | None = None, *, test_size: float = 0.25, seed: int = 0) -> Dataset:
    """The SMS Spam Collection (``label<TAB>text`` per line): texts, labels 0 = ham, 1 = spam."""
    _check_split(test_size)
    found = find_sms_spam(path)
    if found is None or not found.is_file():
        raise ConfigError(
            f"data.path: SMS Spam Collection not found at {found or ', '.join(map(str, SMS_SPAM_CANDIDATES))}"
        )
    texts: list[str] = []
    labels: list[int] = []
    with found.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            label, sep, text = line.partition("\t")
            if not sep or label not in ("ham", "spam"):
                raise ConfigError(f"data.path: {found}:{lineno}: expected 'ham<TAB>text' or 'spam<TAB>text'")
            texts.append(text)
            labels.append(int(label == "spam"))
    y = np.asarray(labels, dtype=np.int64)
    train, test = split_indices(len(y), test_size, seed, stratify=y)
    yt = torch.from_numpy(y)
    return Dataset(
        name="sms_spam",
        modality=Modality.TEXT,
        x_train=[texts[i] for i in train],
        y_train=yt[train],
        x_test=[texts[i] for i in test],
        y_test=yt[test],
        class_names=("ham", "spam"),
        meta={"seed": seed, "test_size": test_size, "path": str(found)},
    )


def _modality_for(x: np.ndarray) -> Modality:
    return Modality.IMAGE if x.ndim >= 3 else Modality.TABULAR


def load_npz(
    path: str | Path, *, test_size: float = 0.25, seed: int = 0, clip: tuple[float, float] | None = None
) -> Dataset:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test`` (used as is) or ``x, y`` (split here).

    Arrays are read with ``allow_pickle=False``: an ``.npz`` holding object arrays is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data.path: no such file: {path}")
    with path.open("rb") as fh:
        if fh.read(4) != b"PK\x03\x04":  # every .npz is a zip archive; np.load would call anything else pickle
            raise ConfigError(f"data.path: {path} is not a .npz file (a zip archive of arrays)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise ConfigError(f"data.path: {path}: {exc} (object arrays are refused: they unpickle code)") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"data.path: {path} is not a readable .npz file ({exc})") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        x_tr, y_tr, x_te, y_te = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        y_all = np.concatenate([y_tr, y_te]).astype(np.int64)
        n_classes = int(y_all.max()) + 1 if y_all.size else 2
        ds = Dataset(
            name=path.stem,
            modality=_modality_for(x_tr),
            x_train=torch.from_numpy(x_tr.astype(np.float32)),
            y_train=torch.from_numpy(y_tr.astype(np.int64)),
            x_test=torch.from_numpy(x_te.astype(np.float32)),
            y_test=torch.from_numpy(y_te.astype(np.int64)),
            class_names=tuple(str(c) for c in range(max(n_classes, 2))),
            clip=clip,
            meta={"path": str(path), "split": "file"},
        )
        return ds
    if {"x", "y"} <= arrays.keys():
        x, y = arrays["x"], arrays["y"].astype(np.int64)
        names = tuple(str(c) for c in range(max(int(y.max()) + 1, 2)))
        return _numeric(
            path.stem,
            x,
            y,
            names,
            modality=_modality_for(x),
            test_size=test_size,
            seed=seed,
            clip=clip,
            meta={"path": str(path)},
        )
    raise ConfigError(
        f"data.path: {path} must hold x_train, y_train, x_test, y_test or x, y; it holds {', '.join(arrays) or 'nothing'}"
    )


def load_csv(
    path: str | Path,
    *,
    label_column: str = "label",
    test_size: float = 0.25,
    seed: int = 0,
    standardize: bool = True,
) -> Dataset:
    """A CSV file with a header: numeric feature columns and one label column (any values)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data.path: no such file: {path}")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if any(v.strip() for v in r)]  # blank lines are not rows
    if len(rows) < 3:
        raise ConfigError(f"data.path: {path} needs a header and at least two rows")
    header, body = rows[0], rows[1:]
    if label_column not in header:
        raise ConfigError(
            f"data.label_column: {label_column!r} is not a column of {path}; columns: {', '.join(header)}"
        )
    li = header.index(label_column)
    raw_labels = [r[li] for r in body]
    classes = sorted(set(raw_labels))
    y = np.asarray([classes.index(v) for v in raw_labels], dtype=np.int64)
    try:
        x = np.asarray([[float(v) for j, v in enumerate(r) if j != li] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise InputValidationError("data.path", "numeric feature columns", str(exc)) from None
    names = tuple(classes) if len(classes) >= 2 else (*classes, "other")
    return _numeric(
        path.stem,
        x,
        y,
        names,
        modality=Modality.TABULAR,
        test_size=test_size,
        seed=seed,
        clip=None,
        standardize=standardize,
        meta={"path": str(path), "label_column": label_column},
    )


#: Data kinds a spec may name, and their loaders.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "sms_spam": load_sms_spam,
    "npz": load_npz,
    "csv": load_csv,
}
