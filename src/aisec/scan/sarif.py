"""SARIF 2.1.0 output, so code-scanning UIs (GitHub, GitLab, Azure DevOps) show scan results.

One rule per dangerous family and per other check (:func:`aisec.scan.rules.rule_ids`); one
result per issue, located at the file (the archive for a member) with a binary region at the
byte offset of the opcode and the offset repeated in the message text. Dangerous issues are
``error``, suspicious ones ``warning``. Format: OASIS SARIF v2.1.0,
https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aisec.scan.results import ScanReport
from aisec.scan.rules import rule_ids, rule_info

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"dangerous": "error", "suspicious": "warning", "safe": "note"}
_SEVERITY = {"dangerous": "9.0", "suspicious": "5.0", "safe": "0.0"}


def _artifact(path: str) -> dict[str, str]:
    """Relative to the working folder (``%SRCROOT%``) when the file is under it, else a file URI."""
    p = Path(path).resolve()
    try:
        return {"uri": p.relative_to(Path.cwd().resolve()).as_posix(), "uriBaseId": "%SRCROOT%"}
    except ValueError:
        return {"uri": p.as_uri()}


def _rule(rule: str) -> dict[str, Any]:
    title, rating, why = rule_info(rule)
    return {
        "id": rule,
        "name": "".join(word.capitalize() for word in rule.split("-")),
        "shortDescription": {"text": title},
        "fullDescription": {"text": why},
        "defaultConfiguration": {"level": _LEVEL[rating]},
        "help": {"text": f"{title}: {why}. Do not load the file unless you trust its author; run `aisec scan` on it."},
        "properties": {"tags": ["security", "supply-chain", "ml-model"], "security-severity": _SEVERITY[rating]},
    }


def to_sarif(report: ScanReport, *, tool_version: str = "0.1.0") -> dict[str, Any]:
    """The SARIF 2.1.0 log of a scan report."""
    ids = rule_ids()
    index = {rule: i for i, rule in enumerate(ids)}
    results = []
    for file, issue in report.issues():
        outer, _, member = file.path.partition("!")
        member = issue.member or member or None
        where = f" at byte offset {issue.offset}" if issue.offset is not None else ""
        inside = f" of archive member {member}" if member else ""
        region: dict[str, Any] = {"startLine": 1}
        if issue.offset is not None:
            region.update({"byteOffset": issue.offset, "byteLength": 1})
        result: dict[str, Any] = {
            "ruleId": issue.rule,
            "level": _LEVEL[issue.rating],
            "message": {"text": f"{issue.message}{where}{inside} [{file.format}, rated {issue.rating}]"},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": _artifact(outer), "region": region},
                    **({"logicalLocations": [{"name": member, "kind": "member"}]} if member else {}),
                }
            ],
            "partialFingerprints": {"aisecScan/v1": f"{file.sha256}:{issue.rule}:{issue.offset}:{issue.global_name}"},
            "properties": {"rating": issue.rating, "format": file.format, "sha256": file.sha256},
        }
        if issue.rule in index:
            result["ruleIndex"] = index[issue.rule]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "aisec-scan",
                        "version": tool_version,
                        "rules": [_rule(rule) for rule in ids],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().resolve().as_uri() + "/"}},
                "results": results,
                "properties": {"counts": report.counts},
            }
        ],
    }


def sarif_json(report: ScanReport, **kwargs: Any) -> str:
    """:func:`to_sarif` as indented JSON text."""
    return json.dumps(to_sarif(report, **kwargs), indent=2)
