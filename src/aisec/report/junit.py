"""The run as JUnit XML: one test case per goal and one per finding gate, so any CI shows it.

A goal's case fails when its verdict is ``fail`` or when a need is declared and nothing measured
it (``not assessed`` is never a pass); a goal without a need is skipped. A gate (a scorecard
check) fails when missed, is skipped when it did not run, and an attack that crashed is an error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aisec.report.digest import Digest


def _case(parent: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(parent, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")


def render_junit(digest: Digest) -> str:
    """The JUnit XML document (one ``testsuite`` per goal inside ``testsuites``)."""
    root = ET.Element("testsuites", name=f"aisec {digest.name}")
    seconds = {f.job_id: f.seconds for f in digest.findings}
    errors_by_job = {f.job_id: f for f in digest.findings if f.status == "error"}
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for row in digest.goals:
        suite = ET.SubElement(root, "testsuite", name=f"aisec.{digest.name}.{row.goal}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        score = digest.score(row.goal)
        verdict = score.verdict if score is not None else None
        case = _case(suite, f"aisec.{row.goal}", f"{row.goal} meets need {row.need or 'none'}")
        counts["tests"] += 1
        if row.need is None:
            ET.SubElement(case, "skipped", message="no protection need declared")
            counts["skipped"] += 1
        elif verdict == "fail" or row.status in ("not assessed", "failed") or verdict == "not assessed":
            why = "not assessed: no attack measured this goal" if row.status == "not assessed" else ""
            why = why or (f"every attack on {row.goal} failed to run" if row.status == "failed" else "")
            score_text = f"score {score.score:.0f}/100" if score is not None and score.score is not None else ""
            message = why or f"{row.goal} misses its {row.need} need ({score_text or 'see the failed checks'})"
            failure = ET.SubElement(case, "failure", message=message, type="aisec.goal")
            failure.text = row.worst_summary or message
            counts["failures"] += 1
        elif verdict is None:
            ET.SubElement(case, "skipped", message="this aisec has no scoring rules: not scored")
            counts["skipped"] += 1
        checks = score.checks if score is not None else ()
        for check in checks:
            name = f"{check.job_id}: {check.metric} {check.comparison} {check.threshold if check.threshold is not None else '-'}"
            case = _case(suite, f"aisec.{row.goal}.gate", name, seconds.get(check.job_id, 0.0))
            counts["tests"] += 1
            if check.job_id in errors_by_job:
                err = ET.SubElement(case, "error", message=errors_by_job[check.job_id].error or "attack failed")
                err.text = errors_by_job[check.job_id].summary
                counts["errors"] += 1
            elif check.passed is False:
                value = f"{check.value:.4g}" if check.value is not None else "-"
                failure = ET.SubElement(case, "failure", message=f"{check.metric} = {value}", type="aisec.gate")
                failure.text = check.explanation
                counts["failures"] += 1
            elif check.passed is None:
                ET.SubElement(case, "skipped", message=check.explanation or "the check did not run")
                counts["skipped"] += 1
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
