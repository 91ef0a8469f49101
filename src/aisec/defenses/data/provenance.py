"""Data provenance: a manifest of content hashes for a data folder, and a verification that
reports every added, removed or changed file and record.

Each file is hashed whole (SHA-256); text files (UTF-8) are also hashed record by record (a line,
or a CSV row with the header kept apart), so that verification can say *which* records changed,
not only that a file did. For ``label<TAB>text`` files (the SMS Spam Collection) and CSV files with a
label column, the manifest also keeps the label histogram, so label flipping shows as a shift.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisec.errors import ConfigError

MANIFEST_VERSION = 1
_TEXT_SUFFIXES = {"", ".txt", ".tsv", ".csv", ".jsonl", ".json"}
_MAX_LABELS = 50


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_hashes(path: Path, data: bytes, label_column: str | None) -> dict[str, Any] | None:
    if path.suffix.lower() not in _TEXT_SUFFIXES:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        header, body = (rows[0], rows[1:]) if rows else ([], [])
        records = [",".join(r) for r in body]
        labels = None
        if label_column and label_column in header:
            i = header.index(label_column)
            labels = Counter(r[i] for r in body if i < len(r))
        info: dict[str, Any] = {"header": _h(",".join(header).encode())[:16]}
    else:
        records = text.splitlines()
        firsts = [r.split("\t", 1)[0] for r in records if "\t" in r]
        labels = (
            Counter(firsts) if records and len(firsts) == len(records) and len(set(firsts)) <= _MAX_LABELS else None
        )
        info = {}
    info["records"] = len(records)
    info["record_hashes"] = [_h(r.encode())[:16] for r in records]
    if labels is not None:
        info["labels"] = dict(sorted(labels.items()))
    return info


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigError(f"no such file or folder: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _rel(root: Path, p: Path) -> str:
    return p.name if root.is_file() else p.relative_to(root).as_posix()


def build_manifest(root: str | Path, *, label_column: str | None = None) -> dict[str, Any]:
    """The manifest of a data file or folder: per file its hash and size, records and labels."""
    root = Path(root)
    files: dict[str, Any] = {}
    for p in _files(root):
        data = p.read_bytes()
        entry: dict[str, Any] = {"sha256": _h(data), "size": len(data)}
        rec = _record_hashes(p, data, label_column)
        if rec is not None:
            entry.update(rec)
        files[_rel(root, p)] = entry
    return {
        "manifest_version": MANIFEST_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "label_column": label_column,
        "files": files,
    }


def write_manifest(root: str | Path, out: str | Path, *, label_column: str | None = None) -> dict[str, Any]:
    manifest = build_manifest(root, label_column=label_column)
    Path(out).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    return manifest


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such manifest: {path}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not a JSON manifest ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(manifest, dict) or manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ConfigError(f"{path}: not an aisec data manifest of version {MANIFEST_VERSION}")
    return manifest


@dataclass(slots=True)
class FileChange:
    """How one file differs from the manifest; record numbers count from 1."""

    path: str
    added_records: list[int] = field(default_factory=list)
    """Records of the current file whose content the manifest does not have."""
    removed_records: list[int] = field(default_factory=list)
    """Records of the manifest's file whose content the current file lacks."""
    changed_records: list[int] = field(default_factory=list)
    """Records at the same position whose content differs (an edit in place)."""
    labels_before: dict[str, int] | None = None
    labels_after: dict[str, int] | None = None


@dataclass(slots=True)
class Verification:
    """Everything that differs between a data folder and its manifest."""

    added_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    changed_files: list[FileChange] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.added_files or self.removed_files or self.changed_files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "added_files": self.added_files,
            "removed_files": self.removed_files,
            "changed_files": [
                {
                    "path": c.path,
                    "added_records": c.added_records,
                    "removed_records": c.removed_records,
                    "changed_records": c.changed_records,
                    "labels_before": c.labels_before,
                    "labels_after": c.labels_after,
                }
                for c in self.changed_files
            ],
        }


def _diff_records(old: list[str], new: list[str]) -> tuple[list[int], list[int], list[int]]:
    old_counts, new_counts = Counter(old), Counter(new)
    gone = old_counts - new_counts
    extra = new_counts - old_counts
    removed, added = [], []
    for i, h in enumerate(old, 1):
        if gone[h] > 0:
            removed.append(i)
            gone[h] -= 1
    for i, h in enumerate(new, 1):
        if extra[h] > 0:
            added.append(i)
            extra[h] -= 1
    changed = sorted(set(removed) & set(added))
    cs = set(changed)
    return [i for i in added if i not in cs], [i for i in removed if i not in cs], changed


def verify(root: str | Path, manifest: dict[str, Any]) -> Verification:
    """Compare a data file or folder with a manifest."""
    current = build_manifest(root, label_column=manifest.get("label_column"))["files"]
    before: dict[str, Any] = manifest["files"]
    result = Verification(
        added_files=sorted(set(current) - set(before)), removed_files=sorted(set(before) - set(current))
    )
    for name in sorted(set(current) & set(before)):
        old, new = before[name], current[name]
        if old["sha256"] == new["sha256"]:
            continue
        change = FileChange(path=name, labels_before=old.get("labels"), labels_after=new.get("labels"))
        if "record_hashes" in old and "record_hashes" in new:
            change.added_records, change.removed_records, change.changed_records = _diff_records(
                old["record_hashes"], new["record_hashes"]
            )
        result.changed_files.append(change)
    return result
