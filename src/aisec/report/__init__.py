"""Reports built from a run folder alone."""

from aisec.report.digest import Digest, GoalRow, digest_run
from aisec.report.render import render_html, write_reports

__all__ = ["Digest", "GoalRow", "digest_run", "render_html", "write_reports"]
