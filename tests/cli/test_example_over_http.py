"""``aisec assess examples/breast_cancer.yaml`` against a real KServe v2 server, as a user runs it.

The example names a model at ``http://127.0.0.1:8080``; the test serves the same kind of model
(a logistic regression on breast cancer's train split, ``tests/targets/v2_server.py``) on a free
loopback port and changes only the URL. Every planned attack must finish over HTTP, the privacy goal
must be assessed by the black-box privacy attacks, attribute inference included, and the server
must have received every query the findings count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aisec.core.findings import Finding

from ..targets.v2_server import ServerThread, State, serving
from .conftest import REPO, run_aisec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ServerThread, State]]:
    with serving() as pair:
        yield pair


def test_the_breast_cancer_example_assesses_a_served_model(served: tuple[ServerThread, State], tmp_path: Path) -> None:
    server, state = served
    spec = yaml.safe_load((REPO / "examples" / "breast_cancer.yaml").read_text(encoding="utf-8"))
    assert spec["target"]["kind"] == "http" and spec["threat_model"]["knowledge"] == "black-box"
    spec["target"]["url"] = server.url
    path = tmp_path / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")

    result = run_aisec(["assess", path, "--out", tmp_path / "run", "--no-progress"], cwd=tmp_path, timeout=600)
    assert result.returncode in (0, 1), result.stderr  # 1: a gate failed, which is a verdict, not a crash

    lines = (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    findings = [Finding.from_json(line) for line in lines]
    assert findings and all(f.error is None for f in findings), [(f.attack, f.error) for f in findings if f.error]
    ran = {f.attack for f in findings}
    assert {"loss-threshold", "label-only", "attribute-inference"} <= ran, ran
    assert all(f.knowledge.value == "black-box" for f in findings if f.goal.value == "privacy")
    # every input the server received is counted: the attacks' queries, the assessor's uncharged checks (e.g. a
    # stolen copy's fidelity on held-out data) and the one probe that checks the target takes the data
    assert sum(f.check_queries for f in findings) > 0
    assert sum(state.inputs.values()) == sum(f.queries + f.check_queries for f in findings) + 1

    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    privacy = next(g for g in report["goals"] if g["goal"] == "privacy")
    assert privacy["status"] == "assessed" and privacy["need"] == "very-high"
