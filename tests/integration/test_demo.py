"""``aisec demo`` from scratch, as on a fresh machine: trains, assesses, reports, in under 3 minutes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aisec.core.findings import Finding

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
SMS = REPO.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection"
#: The issue's requirement: the demo finishes in under 3 minutes on 2 cores.
DEMO_LIMIT_S = 180.0


def _demo(out: Path, cache: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    script = Path(sys.executable).with_name("aisec")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "aisec.cli.main"]
    command += ["demo", "--out", str(out), "--no-progress"]
    if SMS.is_file():
        command += ["--sms", str(SMS)]
    env = {k: v for k, v in os.environ.items() if k not in ("AISEC_CACHE", "FORCE_COLOR")}
    env.update({"AISEC_CACHE": str(cache), "COLUMNS": "200", "NO_COLOR": "1"})
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc, time.perf_counter() - start


def test_demo_from_scratch_then_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "runs"
    proc, seconds = _demo(out, cache)
    print(f"demo from scratch: {seconds:.1f} s")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stdout + proc.stderr

    names = ["demo-digits", "demo-cancer"] + (["demo-spam"] if SMS.is_file() else [])
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(names)
    for name in names:
        run_dir = out / name
        lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
        findings = [Finding.from_json(line) for line in lines]
        assert sum(f.status == "ok" for f in findings) >= 1, [f.error for f in findings]
        assert (run_dir / "report.html").is_file() and (run_dir / "report.json").is_file()
        assert f"{name}: per security goal" in proc.stdout
        assert str(run_dir / "report.html") in proc.stdout
    assert proc.stdout.count("integrity") >= len(names)
    assert ("the spam-filter demo is skipped" in proc.stdout) is not SMS.is_file()  # said, not silently left out
    assert seconds < DEMO_LIMIT_S, f"the demo took {seconds:.0f} s; the issue requires under {DEMO_LIMIT_S:.0f} s"

    models = sorted((cache / "models").iterdir())
    assert len(models) == len(names), models  # one trained model per demo, all cached
    mtimes = {p.name: p.stat().st_mtime_ns for p in models}

    again, seconds_again = _demo(tmp_path / "runs-again", cache)
    print(f"demo from the cache: {seconds_again:.1f} s")
    assert again.returncode == 0, again.stderr[-4000:]
    assert {p.name: p.stat().st_mtime_ns for p in (cache / "models").iterdir()} == mtimes, (
        "a cached model was retrained"
    )
    for name in names:
        assert (tmp_path / "runs-again" / name / "report.html").is_file()
