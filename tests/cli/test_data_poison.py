"""`aisec data roni` and `aisec data poison-scan` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from aisec.attacks.availability.dictionary import dictionary_poison
from aisec.attacks.poisoning.backdoor import add_backdoor
from aisec.attacks.poisoning.common import PatchTrigger
from aisec.cli.main import app
from aisec.data import Dataset

runner = CliRunner()


def _write(path: Path, labels: list[str], texts: list[str]) -> None:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in zip(labels, texts, strict=True)), encoding="utf-8")


def test_roni_rejects_dictionary_poison_and_writes_what_it_keeps(spam_data: Dataset, tmp_path: Path) -> None:
    names = spam_data.class_names
    x, y = list(spam_data.x_train), spam_data.y_train
    trusted = np.zeros(len(y), bool)
    trusted[:1000] = True  # the defender vetted these
    pset = dictionary_poison(
        x[1000:], y[1000:], fraction=0.05, spam_label=names.index("spam"), words_per_message=200, seed=0
    )
    _write(tmp_path / "trusted.txt", [names[i] for i in y[:1000].tolist()], x[:1000])
    _write(tmp_path / "incoming.txt", [names[i] for i in pset.y.tolist()], list(pset.x))
    result = runner.invoke(
        app,
        [
            "data", "roni", str(tmp_path / "incoming.txt"), "--trusted", str(tmp_path / "trusted.txt"),
            "--out", str(tmp_path / "kept.txt"), "--json", str(tmp_path / "roni.json"),
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # something was rejected
    rows = json.loads((tmp_path / "roni.json").read_text())["messages"]
    rejected = np.array([r["rejected"] for r in rows])
    caught = rejected[pset.poisoned].mean()
    precision = pset.poisoned[rejected].mean()
    assert caught > 0.9 and precision > 0.4  # measured 1.0 and 0.54 (1,000 vetted messages, 5% poison)
    kept = (tmp_path / "kept.txt").read_text().splitlines()
    assert len(kept) == len(rows) - int(rejected.sum())


def test_roni_on_a_malformed_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("no tab here\n")
    result = runner.invoke(app, ["data", "roni", str(tmp_path / "bad.txt"), "--trusted", str(tmp_path / "bad.txt")])
    assert result.exit_code == 2 and result.output.startswith("error:")


def test_poison_scan_scores_detectors_on_a_backdoored_npz(digits: Dataset, tmp_path: Path) -> None:
    pset = add_backdoor(
        digits.x_train, digits.y_train, fraction=0.05, trigger=PatchTrigger(size=2), target_label=0, seed=0
    )
    path = tmp_path / "train.npz"
    assert isinstance(pset.x, torch.Tensor)
    np.savez(path, x=pset.x.numpy(), y=pset.y.numpy(), poisoned=pset.poisoned)
    out = tmp_path / "scan.json"
    result = runner.invoke(app, ["data", "poison-scan", str(path), "-d", "spectral", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "spectral" in result.output
    (row,) = json.loads(out.read_text())
    flagged = np.zeros(len(pset.y), bool)
    flagged[row["flagged_indices"]] = True
    assert pset.poisoned[flagged].mean() > 0.8 and flagged[pset.poisoned].mean() > 0.9


def test_poison_scan_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "poison-scan", str(tmp_path / "none.npz")])
    assert result.exit_code == 2 and result.output.startswith("error:")
