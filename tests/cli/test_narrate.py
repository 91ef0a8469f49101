"""``aisec.cli.progress.narrate``: a defense's INFO lines on the console while a command runs."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from aisec.cli.progress import narrate


def test_info_lines_go_to_the_console_and_warnings_to_the_root_handlers_once(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    child = logging.getLogger("aisec.defenses.training.dp")
    parent = logging.getLogger("aisec.defenses")
    before = (parent.level, parent.propagate, list(parent.handlers))
    with caplog.at_level(logging.INFO), narrate(console, "aisec.defenses"):
        child.info("pretraining on %s [bold]x[/bold]", "font_digits")
        child.debug("an epoch's loss")
        child.warning("cache not writable")
        logging.getLogger("aisec.attacks.privacy").info("not narrated")
    shown = out.getvalue()
    assert "pretraining on font_digits [bold]x[/bold]" in shown  # as logged: markup in a message is not applied
    assert "an epoch's loss" not in shown and "not narrated" not in shown
    assert "cache not writable" not in shown
    # the root handlers get the warning once and no narrated line (nothing printed twice); other loggers as before
    assert [r.getMessage() for r in caplog.records] == ["cache not writable", "not narrated"]
    assert (parent.level, parent.propagate, list(parent.handlers)) == before  # restored after the block
    child.info("after the block")
    assert "after the block" not in out.getvalue()
