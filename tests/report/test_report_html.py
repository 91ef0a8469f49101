"""The HTML report of real run folders, opened in headless Chromium: DOM, console, screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from aisec.assess.runner import RunResult
from aisec.core.goals import Goal
from aisec.report import digest_run, write_reports

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VERDICT_RGB = {"pass": (0x1F, 0x8A, 0x4C), "fail": (0xC0, 0x39, 0x2B)}  # the gauge colours of html.py


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium not installed: .ci/run installs it")


def _browser(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console_problems(stderr: str) -> list[str]:
    """Console messages Chromium logged (``--enable-logging=stderr``): any is a defect of a script-free page."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


class _Page(HTMLParser):
    """Tables by id (rows of cell texts), ``<code>`` texts per table, ids, element texts by id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.codes: dict[str, list[str]] = {}
        self.ids: list[str] = []
        self.text_by_id: dict[str, str] = {}
        self.title = ""
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._code: list[str] | None = None
        self._in_title = False
        self._open: list[tuple[str, str, list[str]]] = []  # (tag, id, texts) of elements with an id

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.append(str(a["id"]))
            if tag not in ("path", "g", "use", "clippath", "image", "defs"):
                self._open.append((tag, str(a["id"]), []))
        if tag == "table":
            self._table = a.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
            self.codes[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "code" and self._table is not None:
            self._code = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "code" and self._code is not None and self._table is not None:
            self.codes[self._table].append("".join(self._code).strip())
            self._code = None
        elif tag == "title":
            self._in_title = False
        if self._open and self._open[-1][0] == tag:
            _, ident, texts = self._open.pop()
            self.text_by_id[ident] = " ".join("".join(texts).split())

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._code is not None:
            self._code.append(data)
        if self._in_title:
            self.title += data
        for _, _, texts in self._open:
            texts.append(data)


def _dom(run_dir: Path, tmp: Path) -> _Page:
    proc = _browser(tmp, "--dump-dom", (run_dir / "report.html").as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = _Page()
    page.feed(proc.stdout)
    return page


@pytest.fixture(scope="module")
def real_dir(real_run: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("html-real") / "run"
    shutil.copytree(real_run.run_dir, run_dir)
    write_reports(run_dir, ["html"])
    return run_dir


@pytest.fixture(scope="module")
def full_dir(full_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("html-full") / "run"
    shutil.copytree(full_run, run_dir)
    write_reports(run_dir, ["html"])
    return run_dir


def test_report_dom_in_chromium(real_run: RunResult, real_dir: Path, tmp_path: Path) -> None:
    dom = _dom(real_dir, tmp_path)
    digest = digest_run(real_dir)
    assert dom.title == "aisec report: report-run"

    goals = dom.tables["goals"]
    assert goals[0] == ["Goal", "Protection need", "Status", "Findings", "Worst result", "Score", "Verdict"]
    body = {row[0]: row for row in goals[1:]}
    assert list(body) == [g.value for g in Goal]
    assert body["integrity"][1:4] == ["high", "assessed", "3"]
    assert body["availability"][1:3] == ["normal", "not assessed"]
    assert body["confidentiality"][1:3] == ["normal", "not assessed"]
    assert body["privacy"][1:4] == ["high", "assessed", "1"]
    assert body["integrity"][4].startswith("FGSM at eps=0.3")  # the worst of the three evasion findings
    assert digest.scorecard is not None
    for score in digest.scorecard.goals:  # the page shows the scorecard of the same digest
        assert body[score.goal.value][6] == score.verdict
        assert body[score.goal.value][5] == (f"{score.score:.0f}" if score.score is not None else "-")
    # a declared need that nothing measured is never a pass
    assert body["availability"][6] == "not assessed"

    job_ids = [f.job_id for f in real_run.findings]
    assert dom.codes["findings"] == job_ids
    for finding, row in zip(real_run.findings, dom.tables["findings"][1:], strict=True):
        assert row[0].startswith(finding.job_id)
        assert row[-1] == f"{finding.atlas} / {finding.owasp}"

    # per goal: its checks, one row per check of the scorecard
    for score in digest.scorecard.goals:
        if score.checks:
            rows = dom.tables[f"checks-{score.goal.value}"][1:]
            assert [r[1] for r in rows] == [c.job_id for c in score.checks]
            marks = {True: "met", False: "missed", None: "not run"}
            assert [r[4] for r in rows] == [marks[c.passed] for c in score.checks]


def test_summary_shows_verdicts_and_top_fixes(full_dir: Path, tmp_path: Path) -> None:
    dom = _dom(full_dir, tmp_path)
    digest = digest_run(full_dir)
    assert digest.scorecard is not None and digest.passed is False
    assert dom.text_by_id["overall"] == "fail"
    for score in digest.scorecard.goals:
        card = dom.text_by_id[f"card-{score.goal.value}"]
        assert score.verdict in card
        if score.score is not None:
            assert re.search(rf"\b{score.score:.0f}\s*of 100", card), card
    assert digest.top_fixes, "the full run fails checks that the catalog has fixes for"
    top = dom.text_by_id["top-fixes"]
    positions = [top.index(fix.title) for fix in digest.top_fixes]
    assert positions == sorted(positions)  # in the scorecard's order
    assert [f.id for f in digest.top_fixes] == list(digest.scorecard.top_fixes)


def test_the_findings_table_counts_the_assessors_checks_apart(full_dir: Path, tmp_path: Path) -> None:
    table = _dom(full_dir, tmp_path).tables["findings"]
    col = table[0].index("Queries")
    rows = {r[0].split()[0]: r[col] for r in table[1:]}
    assert re.fullmatch(r"3000\s*\+ 449 checks", rows["knockoff-test"]), rows["knockoff-test"]
    assert rows["inversion-test"] == "0"  # no checks: nothing added


def test_plots_per_goal(real_dir: Path, full_dir: Path, tmp_path: Path) -> None:
    real = _dom(real_dir, tmp_path)
    figures = {a["id"] for t, a in real.tags if t == "figure"}
    # the real run has evasion findings and a membership attack: nothing else to draw
    assert figures == {"plot-integrity-eps", "plot-privacy-roc"}
    full = _dom(full_dir, tmp_path)
    figures = {a["id"] for t, a in full.tags if t == "figure"}
    assert figures == {
        "plot-integrity-eps",
        "plot-integrity-poisoning",
        "plot-confidentiality-extraction",
        "plot-privacy-roc",
        "plot-privacy-inversion",
    }
    duplicated = sorted({i for i in full.ids if full.ids.count(i) > 1})
    assert not duplicated, f"SVG ids collide between figures: {duplicated[:5]}"


def test_self_contained_and_no_console_error(full_dir: Path, tmp_path: Path) -> None:
    html = (full_dir / "report.html").read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for key in ("src", "href", "xlink:href"):
            value = attrs.get(key) or ""
            assert not re.match(r"^(https?:)?//", value), f"<{tag} {key}={value}> loads from the network"
    proc = _browser(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", (full_dir / "report.html").as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "aisec report" in proc.stdout
    assert _console_problems(proc.stderr) == []

    # the same probe sees a console error where there is one
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><p>x</p><script>undefinedFunction()</script>", encoding="utf-8")
    proc = _browser(tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", bad.as_uri())
    assert any("Uncaught" in line for line in _console_problems(proc.stderr)), proc.stderr[-2000:]


def test_summary_screenshot(full_dir: Path, tmp_path: Path) -> None:
    """A screenshot of the top of the page: the summary with a coloured gauge per scored goal."""
    import matplotlib.image as mpimg

    shot = tmp_path / "summary.png"
    proc = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1280,800", (full_dir / "report.html").as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (800, 1280)
    rgb = (pixels[..., :3] * 255).astype(int)
    ink = (rgb.mean(axis=2) < 128).mean()  # dark pixels: text and rules
    assert 0.005 < ink < 0.5, f"{ink:.4f} of the page is dark"
    digest = digest_run(full_dir)
    assert digest.scorecard is not None
    verdicts = {s.verdict for s in digest.scorecard.goals if s.score}
    assert verdicts & set(VERDICT_RGB), "the full run should have scored goals"
    for verdict, colour in VERDICT_RGB.items():
        near = (np.abs(rgb - np.array(colour)).max(axis=2) <= 8).sum()
        if verdict in verdicts:
            assert near > 300, f"no {verdict} gauge in the summary screenshot ({near} pixels)"
        else:
            assert near < 50, f"{verdict} colour where no goal has that verdict ({near} pixels)"
