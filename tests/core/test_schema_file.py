"""docs/finding.schema.json is the schema this aisec writes (regenerate it when the Finding changes)."""

from __future__ import annotations

import json
from pathlib import Path

import aisec

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "finding.schema.json"


def test_published_schema_matches_the_code() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == json.loads(json.dumps(aisec.finding_json_schema())), (
        'regenerate: python -c "import json, aisec; print(json.dumps(aisec.finding_json_schema(), indent=2, sort_keys=True))" '
        "> docs/finding.schema.json"
    )
    assert published["properties"]["schema_version"]["default"] == aisec.SCHEMA_VERSION
