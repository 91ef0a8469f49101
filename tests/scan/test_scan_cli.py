"""``scan_command`` exit codes and outputs (table, JSON, SARIF), hash pinning and the finding."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from aisec.cli.scan import scan_command
from aisec.core.findings import Finding
from aisec.scan import read_lock, scan_path, sha256_file, to_finding, to_sarif, verify
from aisec.scan.rules import rule_ids
from tests.scan.corpus import Reduce


@pytest.fixture
def console() -> Console:
    return Console(record=True, width=200, force_terminal=False)


@pytest.fixture
def mixed_dir(tmp_path: Path, benign_dir: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(benign_dir / "pipeline.joblib", root / "pipeline.joblib")
    shutil.copy(benign_dir / "state_dict.pt", root / "state_dict.pt")
    (root / "evil.pkl").write_bytes(pickle.dumps(Reduce(os.system, "touch /nonexistent/M"), protocol=4))
    return root


def test_exit_codes(benign_dir: Path, mixed_dir: Path, console: Console) -> None:
    assert scan_command([benign_dir], console=console) == 0
    assert scan_command([mixed_dir], console=console) == 1
    text = console.export_text()
    assert "dangerous" in text and "evil.pkl" in text and "posix.system" in text
    assert scan_command([mixed_dir / "nope.pt"], console=console) == 2
    assert scan_command([benign_dir], format="xml", console=console) == 2


def test_json_output(mixed_dir: Path, tmp_path: Path, console: Console) -> None:
    out = tmp_path / "report.json"
    assert scan_command([mixed_dir], format="json", output=out, console=console) == 1
    data = json.loads(out.read_text())
    assert data["counts"] == {"safe": 2, "suspicious": 0, "dangerous": 1}
    evil = next(f for f in data["files"] if f["path"].endswith("evil.pkl"))
    assert evil["rating"] == "dangerous" and evil["globals"] == ["posix.system"]
    assert evil["issues"][0]["offset"] is not None and evil["issues"][0]["opcode"] == "STACK_GLOBAL"


def test_sarif_is_structurally_valid(mixed_dir: Path, tmp_path: Path, console: Console) -> None:
    out = tmp_path / "scan.sarif"
    assert scan_command([mixed_dir], format="sarif", output=out, console=console) == 1
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert ids == rule_ids() and len(set(ids)) == len(ids)
    assert all(r["shortDescription"]["text"] and r["defaultConfiguration"]["level"] for r in rules)
    assert run["results"], "the dangerous file must produce a result"
    for result in run["results"]:
        assert result["ruleId"] in ids and ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"].endswith("evil.pkl")
        offset = location["region"]["byteOffset"]
        assert f"byte offset {offset}" in result["message"]["text"]
    assert run["results"][0]["level"] == "error"


def test_expect_sha256(benign_dir: Path, console: Console) -> None:
    path = benign_dir / "logistic.joblib"
    digest = sha256_file(path)
    assert scan_command([path], expect_sha256=digest, console=console) == 0
    assert scan_command([path], expect_sha256="sha256:" + digest.upper(), console=console) == 0
    assert scan_command([path], expect_sha256="0" * 64, console=console) == 2
    text = console.export_text()
    assert digest in text and "0" * 64 in text
    assert scan_command([path], expect_sha256="not-a-hash", console=console) == 2
    assert scan_command([benign_dir], expect_sha256=digest, console=console) == 2  # a folder is not one file


def test_lock_file_round_trip(mixed_dir: Path, console: Console) -> None:
    lock = mixed_dir / "aisec.lock.json"
    (mixed_dir / "evil.pkl").unlink()
    assert scan_command([mixed_dir], write_lock=lock, console=console) == 0
    pins = read_lock(lock)
    assert set(pins) == {"pipeline.joblib", "state_dict.pt"}
    assert scan_command([mixed_dir], lock=lock, console=console) == 0
    with (mixed_dir / "state_dict.pt").open("ab") as fh:
        fh.write(b"tampered")
    assert scan_command([mixed_dir], lock=lock, console=console) == 2
    (mixed_dir / "extra.pkl").write_bytes(pickle.dumps([1]))
    assert scan_command([mixed_dir / "extra.pkl"], lock=lock, console=console) == 2  # not pinned
    assert "not pinned" in console.export_text()


def test_verify_raises_with_both_hashes(benign_dir: Path) -> None:
    from aisec.errors import UntrustedFileError

    path = benign_dir / "floats.npy"
    assert verify(path, sha256_file(path)) == sha256_file(path)
    with pytest.raises(UntrustedFileError, match=sha256_file(path)) as info:
        verify(path, "f" * 64)
    assert "f" * 64 in str(info.value)


def test_finding_for_the_report(mixed_dir: Path) -> None:
    report = scan_path(mixed_dir)
    finding = to_finding(report)
    assert (finding.attack, finding.goal, finding.atlas, finding.owasp) == (
        "model-scan",
        "integrity",
        "AML.T0010",
        "ML06",
    )
    assert finding.knowledge == "white-box" and finding.output == "labels"
    assert finding.metrics["files"] == 3 and finding.metrics["dangerous"] == 1 and finding.metrics["safe"] == 2
    assert {r["rating"] for r in finding.metrics["ratings"]} == {"safe", "dangerous"}
    assert len(finding.flags) == 1 and "posix.system" in finding.flags[0]
    assert "1 dangerous" in finding.summary
    assert Finding.from_json(finding.to_json()) == finding
    assert to_sarif(report)["runs"][0]["properties"]["counts"]["dangerous"] == 1
