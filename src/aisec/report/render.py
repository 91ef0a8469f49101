"""Write a run's reports (``aisec report RUN_DIR``): JSON, HTML, Markdown and JUnit XML.

Every format is rendered from one :class:`~aisec.report.digest.Digest` of the run folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from aisec.assess.scoring import Scorecard
from aisec.errors import ConfigError
from aisec.report.digest import Digest, digest_run
from aisec.report.html import render_html
from aisec.report.junit import render_junit
from aisec.report.markdown import render_markdown

#: Report formats and the file each writes into the run folder.
FILES = {"json": "report.json", "html": "report.html", "md": "report.md", "junit": "report.xml"}
FORMATS = tuple(FILES)
DEFAULT_FORMATS = ("json", "html", "md", "junit")


def parse_formats(values: Iterable[str] | None) -> list[str]:
    """Formats from repeated and comma-separated values (``["html,json", "md"]``); default all."""
    out: list[str] = []
    for value in values or ():
        for item in str(value).split(","):
            item = item.strip().lower()
            if item == "xml":
                item = "junit"
            if item == "markdown":
                item = "md"
            if item and item not in out:
                out.append(item)
    if not out:
        return list(DEFAULT_FORMATS)
    unknown = [f for f in out if f not in FILES]
    if unknown:
        raise ConfigError(f"report format {', '.join(unknown)} is not allowed; allowed: {', '.join(FORMATS)}")
    return out


def render(digest: Digest, fmt: str, run_dir: str | Path | None = None) -> str:
    """One format of the report as text."""
    if fmt == "json":
        return json.dumps(digest.to_dict(), indent=2, sort_keys=True)
    if fmt == "html":
        return render_html(digest, run_dir)
    if fmt == "md":
        return render_markdown(digest)
    if fmt == "junit":
        return render_junit(digest)
    raise ConfigError(f"report format {fmt!r} is not allowed; allowed: {', '.join(FORMATS)}")


def write_reports(
    run_dir: str | Path, formats: Iterable[str] = DEFAULT_FORMATS, *, scorecard: Scorecard | None = None
) -> list[Path]:
    """Write ``report.<ext>`` into the run folder for each format; returns the paths written."""
    run_dir = Path(run_dir)
    wanted = parse_formats(formats)
    digest = digest_run(run_dir, scorecard=scorecard)
    written = []
    for fmt in wanted:
        path = run_dir / FILES[fmt]
        path.write_text(render(digest, fmt, run_dir), encoding="utf-8")
        written.append(path)
    return written
