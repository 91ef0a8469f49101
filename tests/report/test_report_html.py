"""The HTML report of a real run folder, opened in headless Chromium: its DOM and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aisec.assess.runner import RunResult, run_assessment
from aisec.core.config import parse_spec
from aisec.core.goals import Goal
from aisec.data import load_breast_cancer
from aisec.report import write_reports
from aisec.targets import TorchTarget

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


class _Tables(HTMLParser):
    """Rows of each ``<table id=...>``, as lists of cell texts; the ``<code>`` texts of each table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.codes: dict[str, list[str]] = {}
        self.title = ""
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._code: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or f"table-{len(self.tables)}"
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

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._code is not None:
            self._code.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """A real assessment of an in-memory breast-cancer MLP: two FGSM jobs and a membership attack."""
    data = load_breast_cancer(seed=0)
    assert isinstance(data.x_train, torch.Tensor)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
        opt.step()
    target = TorchTarget(model.eval(), input_shape=(30,), n_classes=2, modality="tabular", device="cpu")
    spec = parse_spec(
        {
            "name": "report-html",
            "target": {"kind": "torch", "path": "in-memory.pt"},
            "data": {"kind": "breast_cancer"},
            "threat_model": {
                "knowledge": "white-box",
                "needs": {
                    "integrity": "high",
                    "availability": "normal",
                    "confidentiality": "normal",
                    "privacy": "high",
                },
            },
            "attacks": [{"name": "fgsm", "eps": 0.1}, {"name": "fgsm", "eps": 0.5}, {"name": "loss-threshold"}],
        }
    )
    run_dir = tmp_path_factory.mktemp("report") / "run"
    result = run_assessment(spec, run_dir=run_dir, target=target, data=data)
    assert [f.status for f in result.findings] == ["ok", "ok", "ok"], [f.error for f in result.findings]
    write_reports(run_dir)
    return result


def test_report_dom_in_chromium(run: RunResult, tmp_path: Path) -> None:
    html = run.run_dir / "report.html"
    proc = _browser(tmp_path, "--dump-dom", html.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Tables()
    dom.feed(proc.stdout)
    assert dom.title == "aisec report: report-html"

    goals = dom.tables["goals"]
    assert goals[0][:3] == ["Goal", "Protection need", "Status"]
    body = {row[0]: row for row in goals[1:]}
    assert list(body) == [g.value for g in Goal]
    assert body["integrity"][1:3] == ["high", "assessed"]
    assert body["availability"][1:3] == ["normal", "not assessed"]
    assert body["confidentiality"][1:3] == ["normal", "not assessed"]
    assert body["privacy"][1:3] == ["high", "assessed"]
    assert body["integrity"][3] == "2"
    assert body["integrity"][4].startswith("FGSM at eps=0.5")  # the worse of the two eps

    job_ids = [f.job_id for f in run.findings]
    assert len(set(job_ids)) == 3
    assert dom.codes["findings"] == job_ids
    assert len(dom.tables["findings"]) == 1 + len(job_ids)
    for finding, row in zip(run.findings, dom.tables["findings"][1:], strict=True):
        assert row[0].startswith(finding.job_id)
        assert row[-1] == f"{finding.atlas} / {finding.owasp}"


def test_report_screenshot_is_a_picture(run: RunResult, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    shot = tmp_path / "report.png"
    proc = _browser(tmp_path, f"--screenshot={shot}", "--window-size=1280,1000", (run.run_dir / "report.html").as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1000, 1280)
    rgb = pixels[..., :3]
    assert not np.all(rgb == rgb[0, 0]), "the screenshot is one flat colour"
    ink = (rgb.mean(axis=2) < 0.5).mean()  # dark pixels: text and table rules
    assert 0.005 < ink < 0.5, f"{ink:.4f} of the page is dark"
