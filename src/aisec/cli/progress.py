"""A rich progress bar fed by the runner's events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from aisec.assess.plan import Job, Plan
from aisec.core.findings import Finding


class _ConsoleHandler(logging.Handler):
    """Prints an INFO record as one dim line on a console (above its live bars); hands warnings to the root logger."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            logging.getLogger().handle(record)  # where warnings always go (stderr), not into the command's output
        else:
            self.console.print(f"[dim]{escape(record.getMessage())}[/dim]")


@contextmanager
def narrate(console: Console, *names: str) -> Iterator[None]:
    """Show the INFO lines of the loggers ``names`` on ``console`` while the block runs, so a long stage says what
    it does (DP-SGD drawing its public digits, pretraining on them); warnings still reach the root logger's handlers
    once, as before."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    handler = _ConsoleHandler(console)
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


class RichObserver:
    """Two bars: jobs of the plan, and steps of the running job."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._jobs: int | None = None
        self._step: int | None = None

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def planned(self, plan: Plan, resumed: int) -> None:
        self._jobs = self.progress.add_task(f"{self.title}: jobs", total=len(plan.jobs), completed=resumed)
        if resumed:
            self.console.print(f"[dim]{self.title}: resuming, {resumed} of {len(plan.jobs)} jobs already done[/dim]")

    def bar(self, description: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback drawing its own bar, created on the first call (a defense's epochs)."""
        task: list[TaskID] = []

        def update(done: int, total: int) -> None:
            if not task:
                task.append(self.progress.add_task(description, total=total))
            self.progress.update(task[0], completed=done, total=total)

        return update

    def job_started(self, job: Job, index: int, total: int) -> None:
        if self._step is not None:
            self.progress.remove_task(self._step)
        self._step = self.progress.add_task(f"  {job.id}", total=None)

    def job_step(self, job: Job, done: int, total: int) -> None:
        if self._step is not None:
            self.progress.update(self._step, completed=done, total=total)

    def job_finished(self, job: Job, finding: Finding) -> None:
        if self._jobs is not None:
            self.progress.advance(self._jobs)
        style = "red" if finding.status == "error" else "green"
        self.console.print(
            f"[{style}]✓[/{style}] {finding.summary}" if finding.status == "ok" else f"[red]✗ {finding.summary}[/red]"
        )
