"""Provenance manifest: every added, removed or changed file and record is reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aisec.defenses.data.provenance import build_manifest, load_manifest, verify, write_manifest
from aisec.errors import ConfigError

SMS_LINES = ["ham\tsee you at 6", "spam\tWIN cash now call 09061743806", "ham\tok lar", "ham\tcoming home"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sms.tsv").write_text("\n".join(SMS_LINES) + "\n", encoding="utf-8")
    (root / "sub" / "table.csv").write_text("x,label\n1,a\n2,b\n3,a\n", encoding="utf-8")
    (root / "blob.bin").write_bytes(bytes(range(256)))
    return root


def test_manifest_records_hashes_counts_and_labels(folder: Path) -> None:
    m = build_manifest(folder, label_column="label")
    files = m["files"]
    assert set(files) == {"sms.tsv", "sub/table.csv", "blob.bin"}
    assert files["sms.tsv"]["records"] == 4 and files["sms.tsv"]["labels"] == {"ham": 3, "spam": 1}
    assert files["sub/table.csv"]["records"] == 3 and files["sub/table.csv"]["labels"] == {"a": 2, "b": 1}
    assert "record_hashes" not in files["blob.bin"] and files["blob.bin"]["size"] == 256
    assert verify(folder, m).ok


def test_verify_names_every_changed_record_and_file(folder: Path) -> None:
    m = build_manifest(folder)
    lines = list(SMS_LINES)
    lines[0] = "spam\tsee you at 6"  # a flipped label: record 1 changed in place
    del lines[2]  # record 3 removed
    lines.append("spam\tfree entry txt WIN")  # a poison point added
    (folder / "sms.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "blob.bin").unlink()
    (folder / "new.txt").write_text("hello\n", encoding="utf-8")
    result = verify(folder, m)
    assert result.added_files == ["new.txt"] and result.removed_files == ["blob.bin"]
    (change,) = result.changed_files
    assert change.path == "sms.tsv"
    assert change.changed_records == [1]
    assert change.removed_records == [3]
    assert change.added_records == [4]
    assert change.labels_before == {"ham": 3, "spam": 1} and change.labels_after == {"ham": 1, "spam": 3}


def test_manifest_file_round_trip_and_bad_manifests(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    write_manifest(folder, out)
    assert verify(folder, load_manifest(out)).ok
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a JSON manifest"):
        load_manifest(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"files": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="version"):
        load_manifest(tmp_path / "other.json")
    with pytest.raises(ConfigError, match="no such"):
        build_manifest(tmp_path / "missing")


def _aisec(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aisec.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_cli_manifest_verify_and_pii(folder: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    made = _aisec("data", "manifest", folder, "--out", manifest)
    assert made.returncode == 0, made.stderr
    assert _aisec("data", "verify", folder, "--manifest", manifest).returncode == 0
    (folder / "sms.tsv").write_text("ham\tsee you at 6\n", encoding="utf-8")
    changed = _aisec("data", "verify", folder, "--manifest", manifest, "--json", tmp_path / "diff.json")
    assert changed.returncode == 1 and "sms.tsv" in changed.stdout
    assert json.loads((tmp_path / "diff.json").read_text())["changed_files"][0]["removed_records"] == [2, 3, 4]
    found = _aisec("data", "pii", folder / "sub" / "table.csv")
    assert found.returncode == 0  # no personal data in it
    (folder / "contacts.txt").write_text("mail ann@ex.org\n", encoding="utf-8")
    redacted = tmp_path / "clean.txt"
    flagged = _aisec("data", "pii", folder / "contacts.txt", "--redact", redacted)
    assert flagged.returncode == 1 and redacted.read_text() == "mail [EMAIL]\n"
    missing = _aisec("data", "verify", folder, "--manifest", tmp_path / "nope.json")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "no such manifest" in missing.stderr
