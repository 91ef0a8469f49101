"""Write a run's report as JSON and as a plain HTML page (``aisec report RUN_DIR``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from aisec.errors import ConfigError
from aisec.report.digest import Digest, digest_run

FORMATS = ("json", "html")


def render_html(digest: Digest) -> str:
    """The report as one self-contained HTML page (no scripts, no external resources)."""
    env = Environment(loader=PackageLoader("aisec.report", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html").render(d=digest, data=digest.to_dict())


def write_reports(run_dir: str | Path, formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write ``report.<format>`` into the run folder for each format; returns the paths."""
    run_dir = Path(run_dir)
    formats = list(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ConfigError(f"report format {', '.join(unknown)} is not allowed; allowed: {', '.join(FORMATS)}")
    digest = digest_run(run_dir)
    written = []
    if "json" in formats:
        path = run_dir / "report.json"
        path.write_text(json.dumps(digest.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        written.append(path)
    if "html" in formats:
        path = run_dir / "report.html"
        path.write_text(render_html(digest), encoding="utf-8")
        written.append(path)
    return written
