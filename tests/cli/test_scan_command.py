"""`aisec scan` through the real command line: exit 1 for a dangerous file, 0 for a benign one."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _aisec(*args: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "aisec.cli.main", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})


def test_scan_flags_a_dangerous_pickle_and_passes_a_benign_one(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    bad = tmp_path / "model.pkl"
    bad.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    good = tmp_path / "weights.pkl"
    good.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))

    flagged = _aisec("scan", bad, "--format", "json", "--output", tmp_path / "scan.json")
    assert flagged.returncode == 1, flagged.stdout + flagged.stderr
    report = json.loads((tmp_path / "scan.json").read_text())
    text = json.dumps(report)
    assert "dangerous" in text and "system" in text
    assert not marker.exists(), "the scanner must never run the file"

    clean = _aisec("scan", good)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "safe" in clean.stdout


def test_scan_of_a_missing_path_is_one_line(tmp_path: Path) -> None:
    result = _aisec("scan", tmp_path / "nope.pt")
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
