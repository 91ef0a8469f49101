"""The scan as an assessment finding: integrity / supply chain (ATLAS AML.T0010, OWASP ML06).

MITRE ATLAS AML.T0010 "ML Supply Chain Compromise" (https://atlas.mitre.org/techniques/AML.T0010);
OWASP Machine Learning Security Top 10, ML06:2023 "AI Supply Chain Attacks"
(https://owasp.org/www-project-machine-learning-security-top-10/).
"""

from __future__ import annotations

from aisec.core.findings import Finding
from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.scan.results import ScanReport
from aisec.scan.scanner import describe

ATLAS = "AML.T0010"
OWASP = "ML06"
PAPER = "MITRE ATLAS AML.T0010 ML Supply Chain Compromise; OWASP ML Top 10 ML06 AI Supply Chain Attacks"


def to_finding(report: ScanReport, *, job_id: str = "model-scan", seconds: float = 0.0) -> Finding:
    """Turn a scan report into a :class:`~aisec.core.findings.Finding` for the assessment report.

    Metrics: ``files`` and the ``dangerous`` / ``suspicious`` / ``safe`` counts, and ``ratings``,
    one ``{path, format, rating, sha256}`` per file; ``flags`` lists each dangerous call.
    """
    counts = report.counts
    ratings = [{"path": f.path, "format": f.format, "rating": f.rating, "sha256": f.sha256} for f in report.files]
    flags = [f"dangerous: {f.path}: {describe(issue)}" for f, issue in report.issues("dangerous")]
    summary = (
        f"{len(report.files)} model file(s) scanned: {counts['dangerous']} dangerous, "
        f"{counts['suspicious']} suspicious, {counts['safe']} safe"
    )
    if flags:
        summary += f"; loading would run code ({describe(report.issues('dangerous')[0][1])})"
    return Finding(
        job_id=job_id,
        attack="model-scan",
        goal=Goal.INTEGRITY,
        knowledge=Knowledge.WHITE_BOX,
        output=OutputKind.LABELS,
        config={"roots": list(report.roots)},
        metrics={
            "files": len(report.files),
            "dangerous": counts["dangerous"],
            "suspicious": counts["suspicious"],
            "safe": counts["safe"],
            "ratings": ratings,
        },
        headline="dangerous",
        summary=summary,
        flags=flags,
        seconds=seconds,
        atlas=ATLAS,
        owasp=OWASP,
        paper=PAPER,
    )
