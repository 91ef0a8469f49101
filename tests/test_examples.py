"""The spec files users copy from examples/ are valid specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aisec.core.config import parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"digits_cnn.yaml", "breast_cancer.yaml", "spam_filter.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_valid_spec(path: Path) -> None:
    spec = parse_spec(yaml.safe_load(path.read_text()), source=str(path))
    assert spec.name and spec.threat.needs
