"""The runner: executes a plan and appends one finding per finished job to ``results.jsonl``.

A run folder holds ``spec.json`` (the resolved spec), ``run.json`` (plan, target, data, threat
model, versions), ``results.jsonl`` (one finding per line, flushed and fsynced as each job ends)
and ``evidence/``. A run killed at any point and started again with ``resume=True`` skips the
jobs whose findings are already written and ends with exactly the findings of an uninterrupted
run, none twice: a line cut short by the kill is dropped before appending.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import shutil
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from aisec.assess.plan import Job, Plan, make_plan
from aisec.attacks.base import AttackContext
from aisec.core.budget import QueryBudget
from aisec.core.config import Spec, spec_to_dict
from aisec.core.executor import Executor
from aisec.core.files import write_text_atomic
from aisec.core.findings import Finding
from aisec.data import LOADERS
from aisec.data.dataset import Dataset
from aisec.errors import AisecError, ConfigError, InputValidationError
from aisec.registry import get_attack
from aisec.targets import load_target
from aisec.targets.base import Target
from aisec.targets.recipe import Recipe, load_trainer, recipe_for

log = logging.getLogger(__name__)

RESULTS = "results.jsonl"


class RunObserver(Protocol):
    """Receives progress events (the CLI draws a progress bar from them)."""

    def planned(self, plan: Plan, resumed: int) -> None: ...
    def job_started(self, job: Job, index: int, total: int) -> None: ...
    def job_step(self, job: Job, done: int, total: int) -> None: ...
    def job_finished(self, job: Job, finding: Finding) -> None: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished (or resumed-and-finished) run."""

    run_dir: Path
    plan: Plan
    findings: tuple[Finding, ...]
    resumed: int


def load_data(spec: Spec) -> Dataset:
    """The dataset a spec names, split with its seed."""
    d = spec.data
    kwargs: dict[str, Any] = {"test_size": d.test_size, "seed": d.seed}
    if d.kind in ("sms_spam", "npz", "csv"):
        kwargs["path"] = d.path
    if d.kind == "csv":
        kwargs["label_column"] = d.label_column
    return LOADERS[d.kind](**kwargs)


def iter_findings(run_dir: Path) -> Iterator[Finding]:
    """Findings of a run folder in the order they were written; a final partial line is ignored."""
    path = Path(run_dir) / RESULTS
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # cut short by a kill: not a finding
            if line.strip():
                yield Finding.from_json(line)


def read_findings(run_dir: Path) -> list[Finding]:
    """All complete findings of a run folder."""
    return list(iter_findings(run_dir))


def _truncate_partial_line(path: Path) -> None:
    if not path.is_file():
        return
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut != len(data):
        with path.open("r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())


def _append(path: Path, finding: Finding) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(finding.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def _error_finding(job: Job, spec: Spec, exc: BaseException, seconds: float) -> Finding:
    cls = get_attack(job.attack)
    threat = spec.threat
    return Finding(
        job_id=job.id,
        attack=job.attack,
        goal=job.goal,
        knowledge=threat.knowledge,
        output=threat.output,
        status="error",
        config=dict(job.params),
        summary=f"{job.attack} failed: {type(exc).__name__}: {exc}",
        error=f"{type(exc).__name__}: {exc}",
        seconds=round(seconds, 4),
        atlas=cls.atlas,
        owasp=cls.owasp,
        paper=cls.paper,
        headline=cls.headline,
        worse_when=cls.worse_when,
        seed=job.seed,
    )


def check_compatible(target: Target, data: Dataset) -> None:
    """Fail up front when the target cannot take the data (every job would fail the same way).

    One test input is validated and sent to the target once: a probe made by the assessor, not
    by the attacker, so it is not charged to the query budget. A remote target that cannot be
    reached raises :class:`~aisec.errors.TargetUnavailableError` here.
    """
    x = data.x_test[:1] if len(data.y_test) else data.x_train[:1]
    x = target.validate_inputs(x, argument="data")
    try:
        target._predict_labels(x)
    except AisecError:
        raise
    except Exception as exc:  # the model itself rejects the input (shape, features, dtype)
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = lines[-1] if lines else type(exc).__name__
        shape = f" of shape {data.input_shape}" if data.input_shape else ""
        raise InputValidationError(
            "data",
            f"inputs the {target.kind} target accepts",
            f"{data.name} inputs{shape}, which it rejects: {type(exc).__name__}: {reason}",
        ) from None
    if target.has_gradients:  # the model's own output width (a torch target takes n_classes from the data)
        with torch.no_grad():
            out = target._torch_module()(x)
        if out.ndim != 2 or out.shape[1] != data.n_classes:
            raise InputValidationError(
                "target",
                f"{data.n_classes} outputs per input, one per class of {data.name}",
                f"shape {tuple(out.shape)}",
            )
    if target.n_classes != data.n_classes:
        raise InputValidationError(
            "data", f"{target.n_classes} classes like the target", f"{data.n_classes} classes ({data.name})"
        )


def run_assessment(
    spec: Spec,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    target: Target | None = None,
    data: Dataset | None = None,
    observer: RunObserver | None = None,
    recipe: Recipe | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Run the assessment a spec describes and write its run folder.

    Parameters
    ----------
    spec:
        The validated spec.
    run_dir:
        Run folder; defaults to ``runs/<spec.name>``.
    resume:
        Keep the findings already in the folder and run only the missing jobs. The spec must be
        the one the run started with.
    target, data:
        Objects to use instead of loading what the spec names (the Python API's way to assess a
        model held in memory).
    observer:
        Receives progress events.
    recipe:
        The target's training recipe for poisoning attacks, instead of the one the spec implies
        (``target.trainer``, or a clone of an sklearn estimator).
    executor:
        Where attacks run independent work such as shadow-model training (``None``: in this
        process); the caller owns it and closes it.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / spec.name
    results = run_dir / RESULTS
    spec_json = spec_to_dict(spec)
    if resume and (run_dir / "spec.json").is_file():
        before = json.loads((run_dir / "spec.json").read_text(encoding="utf-8"))
        if before != spec_json:
            raise ConfigError(f"{run_dir}: the spec differs from the one this run started with; run without --resume")
    data = data if data is not None else load_data(spec)
    if target is None:
        scan = scan_model_file(spec)  # before loading: a dangerous file is refused by the loader
        with load_target(spec.target, data) as loaded:
            return _run(spec, run_dir, results, spec_json, resume, loaded, data, observer, scan, recipe, executor)
    return _run(spec, run_dir, results, spec_json, resume, target, data, observer, None, recipe, executor)


def scan_model_file(spec: Spec) -> Finding | None:
    """The supply-chain finding for the target's model file (``model-scan``), or ``None`` for http."""
    if spec.target.kind == "http" or not spec.target.path or not Path(spec.target.path).exists():
        return None
    import time

    from aisec.scan import scan_path, to_finding

    start = time.perf_counter()
    report = scan_path(spec.target.path, recursive=False)
    return to_finding(report, seconds=round(time.perf_counter() - start, 4))


def _run(
    spec: Spec,
    run_dir: Path,
    results: Path,
    spec_json: dict[str, Any],
    resume: bool,
    target: Target,
    data: Dataset,
    observer: RunObserver | None,
    scan: Finding | None,
    recipe: Recipe | None,
    executor: Executor | None = None,
) -> RunResult:
    check_compatible(target, data)
    if recipe is None:
        trainer = load_trainer(spec.target.trainer, base_dir=Path.cwd()) if spec.target.trainer else None
        recipe = recipe_for(target, trainer)
    plan = make_plan(spec, target, data, can_retrain=recipe is not None)
    threat = spec.threat
    if not resume:  # only now, when the new run can start, do the old results go
        for stale in (results, run_dir / "evidence"):
            if stale.is_dir():
                shutil.rmtree(stale)
            elif stale.exists():
                stale.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)

    _truncate_partial_line(results)
    done = {f.job_id: f for f in iter_findings(run_dir)} if resume else {}
    _write_json(run_dir / "spec.json", spec_json)
    _write_json(
        run_dir / "run.json",
        {
            "name": spec.name,
            "aisec_version": _version(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "threat_model": threat.to_dict(),
            "target": target.describe(),
            "data": data.describe(),
            "plan": plan.to_dict(),
        },
    )
    resumed = sum(1 for j in plan.jobs if j.id in done)
    if observer:
        observer.planned(plan, resumed)
    findings: dict[str, Finding] = {}
    if scan is not None:
        if scan.job_id in done:
            scan = done[scan.job_id]
        else:
            _append(results, scan)
    for index, job in enumerate(plan.jobs):
        if job.id in done:
            findings[job.id] = done[job.id]
            continue
        if observer:
            observer.job_started(job, index, len(plan.jobs))
        finding = _run_job(job, spec, target, data, run_dir, observer, recipe, executor)
        _append(results, finding)
        findings[job.id] = finding
        if observer:
            observer.job_finished(job, finding)
    ordered = ((scan,) if scan is not None else ()) + tuple(findings[j.id] for j in plan.jobs)
    return RunResult(run_dir=run_dir, plan=plan, findings=ordered, resumed=resumed)


def _run_job(
    job: Job,
    spec: Spec,
    target: Target,
    data: Dataset,
    run_dir: Path,
    observer: RunObserver | None,
    recipe: Recipe | None,
    executor: Executor | None = None,
) -> Finding:
    import time

    threat = spec.threat
    attack = get_attack(job.attack).from_params(job.params)
    view = target.view(threat.knowledge, threat.output, budget=QueryBudget(threat.query_budget), top_k=threat.top_k)
    ctx = AttackContext(
        seed=job.seed,
        run_dir=run_dir,
        job_id=job.id,
        threat_model=threat,
        recipe=recipe,
        executor=executor,
        progress=(lambda d, t: observer.job_step(job, d, t)) if observer else None,
    )
    start = time.perf_counter()
    try:
        return attack.run(view, data, ctx)
    except (KeyboardInterrupt, SystemExit):
        raise
    except AisecError as exc:
        log.warning("%s failed: %s", job.id, exc)
        return _error_finding(job, spec, exc, time.perf_counter() - start)
    except Exception as exc:  # an attack's bug must not lose the other findings
        log.error("%s crashed:\n%s", job.id, traceback.format_exc())
        return _error_finding(job, spec, exc, time.perf_counter() - start)


def _version() -> str:
    from aisec import __version__

    return __version__
