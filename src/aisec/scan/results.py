"""What a scan reports: one :class:`Issue` per finding, one :class:`FileResult` per model file.

A rating is ``"safe"`` (nothing outside the allowlist), ``"suspicious"`` (something the scanner
cannot vouch for: a global outside the allowlist, a malformed stream, a content / extension
mismatch) or ``"dangerous"`` (loading the file runs a command, opens a socket, evaluates code,
reads files outside the model's folder...). A file takes the worst rating of its issues.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Rating = Literal["safe", "suspicious", "dangerous"]

RATINGS: tuple[Rating, ...] = ("safe", "suspicious", "dangerous")
_ORDER: dict[str, int] = {"safe": 0, "suspicious": 1, "dangerous": 2}


def worst(ratings: Iterable[Rating]) -> Rating:
    """The most severe of ``ratings``; ``"safe"`` when there are none."""
    result: Rating = "safe"
    for rating in ratings:
        if _ORDER[rating] > _ORDER[result]:
            result = rating
    return result


@dataclass(frozen=True, slots=True)
class Issue:
    """One thing the scanner found in a file.

    Parameters
    ----------
    offset:
        Byte offset of the opcode (or structure) in the scanned stream; ``None`` when the issue
        is about the file as a whole. Inside an archive the offset is within ``member``; in a
        compressed joblib file it is within the decompressed stream.
    opcode:
        The pickle opcode that imports or calls (``GLOBAL``, ``STACK_GLOBAL``, ``INST``,
        ``REDUCE``, ``BUILD``...), or ``None`` outside pickles.
    global_name:
        The imported global as ``module.name`` (``"?"`` when it cannot be resolved statically).
    rating:
        ``"suspicious"`` or ``"dangerous"``.
    message:
        One sentence for a person: what it is, the call with its arguments when known, why it matters.
    rule:
        Identifier of the rule (a dangerous family such as ``"os-command"``, or
        ``"unlisted-global"``, ``"extension-mismatch"``...); SARIF uses it as ``ruleId``.
    member:
        Path of the archive member the issue is in (e.g. ``archive/data.pkl``), if any.
    """

    offset: int | None
    opcode: str | None
    global_name: str | None
    rating: Rating
    message: str
    rule: str = "unlisted-global"
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class FileResult:
    """The verdict on one model file (or one model file inside an archive: ``outer.tar!inner.pkl``)."""

    path: str
    format: str
    rating: Rating
    issues: list[Issue] = field(default_factory=list)
    sha256: str = ""
    globals: list[str] = field(default_factory=list)
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "rating": self.rating,
            "sha256": self.sha256,
            "size": self.size,
            "globals": list(self.globals),
            "issues": [issue.to_dict() for issue in self.issues],
        }


@dataclass(slots=True)
class ScanReport:
    """Every file a scan looked at.

    ``files`` holds the model files (recognised by content or by a model extension); ``skipped``
    the other files met in folders and archives (text, images...), which hold no code to run.
    """

    files: list[FileResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)

    @property
    def rating(self) -> Rating:
        """The worst rating over all files."""
        return worst(f.rating for f in self.files)

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per rating."""
        counts = dict.fromkeys(RATINGS, 0)
        for f in self.files:
            counts[f.rating] += 1
        return counts

    def issues(self, rating: Rating | None = None) -> list[tuple[FileResult, Issue]]:
        """All (file, issue) pairs, optionally only those of one rating."""
        return [(f, i) for f in self.files for i in f.issues if rating is None or i.rating == rating]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "aisec-scan",
            "rating": self.rating,
            "counts": self.counts,
            "roots": list(self.roots),
            "files": [f.to_dict() for f in self.files],
            "skipped": list(self.skipped),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)
