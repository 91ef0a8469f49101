"""``aisec harden``: apply a defense, attack the defended model with the same plan, weigh gain and cost.

The baseline run folder (``runs/<name>`` or ``run_dir``) is reused when it holds a finished run of
the same spec, else it is run first. The defended model answers the same plan in
``<run>/defended/``, and ``<run>/defended/harden.json`` records, per goal and per job, the
headline before and after (gain > 0 means the defense helped), the cost in clean accuracy and in
seconds, and the adaptive check: for a preprocessing defense the defended target's differentiable
model carries the BPDA or EOT gradient, so the plan's white-box attacks are adaptive by
construction; the non-adaptive figures (an attack made on the undefended model, and one through
the defense's true, masked gradient) are shown beside them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aisec.assess.runner import RunObserver, load_data, read_findings, run_assessment
from aisec.attacks.integrity.pgd import pgd_perturb
from aisec.core.config import Spec, spec_to_dict
from aisec.core.files import write_text_atomic
from aisec.core.findings import jsonable
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, ProgressFn, get_defense
from aisec.errors import UnsupportedTargetError
from aisec.report.digest import digest_run
from aisec.targets import TorchTarget, load_target
from aisec.targets.base import Target

log = logging.getLogger(__name__)

HARDEN_FILE = "harden.json"


class DefendedTarget(TorchTarget):
    """A torch target serving ``defended.deployed`` whose white-box model is ``defended.model``."""

    kind = "torch"

    def __init__(self, defended: Defended, base: TorchTarget, name: str) -> None:
        super().__init__(
            defended.deployed,
            input_shape=base.input_shape or (),
            n_classes=base.n_classes,
            clip=base.clip,
            modality=base.modality,
            device=base.device,
            batch_size=base.batch_size,
            name=name,
        )
        self._adaptive = defended.model.to(self.device).eval()

    def _torch_module(self) -> nn.Module:
        return self._adaptive


@dataclass(frozen=True, slots=True)
class HardenResult:
    """What :func:`harden` measured; ``to_dict`` is what ``harden.json`` holds."""

    defense: str
    params: dict[str, Any]
    run_dir: Path
    defended_dir: Path
    goals: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    clean_accuracy: dict[str, float]
    seconds: dict[str, float]
    adaptive: dict[str, Any]
    flags: list[str] = field(default_factory=list)
    defense_info: dict[str, Any] = field(default_factory=dict)
    """What the defense itself reports (``Defended.info``): for ``dp-sgd`` the accountant's epsilon, the noise."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_dir"], out["defended_dir"] = str(self.run_dir), str(self.defended_dir)
        return out


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    with torch.no_grad():
        right = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(y), batch))
    return right / max(len(y), 1)


def _seconds_per_1k(model: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    return (time.perf_counter() - start) * 1000 / max(len(x), 1)


def _same_run(run_dir: Path, spec: Spec) -> bool:
    path = run_dir / "spec.json"
    if not (path.is_file() and (run_dir / "run.json").is_file()):
        return False
    if json.loads(path.read_text(encoding="utf-8")) != spec_to_dict(spec):
        return False
    plan = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("plan", {})
    done = {f.job_id for f in read_findings(run_dir)}
    return all(j.get("id") in done for j in plan.get("jobs", []))


def _pgd_eps(spec: Spec, target: Target, data: Dataset) -> float:
    """The L-inf eps the adaptive check uses: the threat model's, else the plan's first PGD/FGSM, else 0.1."""
    if spec.threat.epsilon is not None:
        return float(spec.threat.epsilon)
    if spec.attacks != "auto":
        for a in spec.attacks:
            if a.name in ("pgd", "fgsm") and a.params.get("norm", "linf") == "linf" and "eps" in a.params:
                return float(a.params["eps"])
    return 0.1


def adaptive_check(
    base: nn.Module, defended: Defended, data: Dataset, *, eps: float, n: int = 500, steps: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Robust accuracy of the deployed defense at ``eps`` (L-inf PGD, step eps/4) under each attacker.

    ``undefended``: the undefended model under white-box PGD. ``transfer``: PGD made on the
    undefended model, answered by the defense (non-adaptive). ``naive``: PGD through the defense's
    true gradients (BPDA for the median; preprocessing defenses only). ``adaptive``: PGD through the
    defended target's white-box model (BPDA/EOT for preprocessing defenses). ``worst_case``:
    inputs no attack above breaks. ``non_adaptive``: the lower of ``transfer`` and ``naive``.
    """
    x, y = data.test_subset(n, seed)
    assert isinstance(x, torch.Tensor)
    device = next(iter(base.parameters()), torch.zeros(())).device
    x, y = x.to(device), y.to(device)
    deployed = defended.deployed

    def attack(model: nn.Module) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return pgd_perturb(model, x, y, eps=eps, steps=steps, alpha=eps / 4, clip=data.clip, generator=gen)

    torch.manual_seed(seed)  # randomized defenses draw their noise from the global generator
    x_base = attack(base)
    with torch.no_grad():
        held = {
            "transfer": deployed(x_base).argmax(1) == y,
            "adaptive": deployed(attack(defended.model)).argmax(1) == y,
        }
        if defended.naive is not None:
            held["naive"] = deployed(attack(defended.naive)).argmax(1) == y
        undefended = base(x_base).argmax(1) == y
    worst = torch.stack(list(held.values())).all(dim=0)
    rows: dict[str, Any] = {
        "eps": eps,
        "steps": steps,
        "n": len(y),
        "undefended": float(undefended.float().mean()),
        **{k: float(v.float().mean()) for k, v in held.items()},
        "worst_case": float(worst.float().mean()),
    }
    rows.setdefault("naive", None)
    rows["non_adaptive"] = min(v for k, v in rows.items() if k in ("transfer", "naive") and v is not None)
    return rows


def _goal_rows(before_dir: Path, after_dir: Path, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per goal: the scorecard's score and verdict before and after, and the job that was the goal's worst before,
    with its row of ``jobs`` (:func:`_job_rows`: its headline in both runs; the plan is the same, so is its id)."""
    before, after = digest_run(before_dir), digest_run(after_dir)
    by_job = {row["job_id"]: row for row in jobs}
    rows = []
    for b, a in zip(before.goals, after.goals, strict=True):
        job = by_job.get(b.worst_job or "")
        after_value, gain = (job["after"], job["gain"]) if job is not None else (None, None)
        sb, sa = before.score(b.goal), after.score(a.goal)
        score_before = sb.score if sb is not None else None
        score_after = sa.score if sa is not None else None
        rows.append({
            "goal": b.goal, "need": b.need, "status_before": b.status, "status_after": a.status,
            "verdict_before": sb.verdict if sb is not None else None,
            "verdict_after": sa.verdict if sa is not None else None,
            "score_before": score_before, "score_after": score_after,
            "score_gain": None if score_before is None or score_after is None else score_after - score_before,
            "job_id": b.worst_job, "metric": b.worst_metric, "before": b.worst_value, "after": after_value, "gain": gain,
        })  # fmt: skip
    return rows


def _job_rows(before_dir: Path, after_dir: Path) -> list[dict[str, Any]]:
    after = {f.job_id: f for f in read_findings(after_dir)}
    rows = []
    for b in read_findings(before_dir):
        a = after.get(b.job_id)
        if a is None or not b.headline or b.worse_when is None:
            continue
        vb, va = b.metrics.get(b.headline), a.metrics.get(b.headline)
        if not isinstance(vb, int | float) or not isinstance(va, int | float):
            continue
        sign = -1.0 if b.worse_when == "higher" else 1.0
        rows.append({
            "job_id": b.job_id, "attack": b.attack, "goal": b.goal.value, "metric": b.headline,
            "before": float(vb), "after": float(va), "gain": sign * (float(va) - float(vb)),
        })  # fmt: skip
    return rows


def harden(
    spec: Spec,
    defense: str,
    params: Mapping[str, Any] | None = None,
    *,
    run_dir: str | Path | None = None,
    target: TorchTarget | None = None,
    data: Dataset | None = None,
    observer: RunObserver | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_defense_progress: ProgressFn | None = None,
) -> HardenResult:
    """Apply ``defense`` to the spec's torch target, re-run the plan on it and weigh gain against cost.

    Parameters
    ----------
    spec:
        The assessment; its target must be a torch model.
    defense, params:
        A registered defense (:func:`aisec.defenses.defenses`) and its parameters.
    run_dir:
        The baseline run folder (default ``runs/<spec.name>``); the defended run goes to ``<run_dir>/defended``.
    target, data:
        Objects to use instead of loading what the spec names.
    observer:
        Receives both runs' progress events.
    on_stage:
        Called with a short message as each stage starts.
    on_defense_progress:
        Passed to the defense's ``apply`` as ``progress(done, total)`` (epochs, for the training defenses).
    """
    stage = on_stage or (lambda msg: log.info("%s", msg))
    cls = get_defense(defense)
    chosen = cls(**dict(params or {}))
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / spec.name
    defended_dir = run_dir / "defended"
    data = data if data is not None else load_data(spec)
    loaded = target if target is not None else load_target(spec.target, data)
    try:
        if not isinstance(loaded, TorchTarget):
            raise UnsupportedTargetError(f"aisec harden needs a torch target; this one is {loaded.kind}")
        seconds: dict[str, float] = {}
        if _same_run(run_dir, spec):
            stage(f"reusing the baseline run in {run_dir}")
            seconds["baseline_assessment"] = 0.0
        else:
            stage(f"assessing the undefended model into {run_dir}")
            t0 = time.perf_counter()
            run_assessment(spec, run_dir=run_dir, target=loaded, data=data, observer=observer)
            seconds["baseline_assessment"] = round(time.perf_counter() - t0, 3)
        base = loaded._torch_module()
        stage(f"applying {defense}")
        t0 = time.perf_counter()
        defended = chosen.apply(base, data, seed=spec.seed, progress=on_defense_progress)
        seconds["defense"] = round(time.perf_counter() - t0, 3)
        target_d = DefendedTarget(defended, loaded, name=f"{loaded.name}+{defense}")
        stage(f"assessing the defended model into {defended_dir}")
        t0 = time.perf_counter()
        run_assessment(spec, run_dir=defended_dir, target=target_d, data=data, observer=observer)
        seconds["defended_assessment"] = round(time.perf_counter() - t0, 3)
        assert isinstance(data.x_test, torch.Tensor)
        x_test, y_test = data.x_test.to(loaded.device), data.y_test.to(loaded.device)
        torch.manual_seed(spec.seed)
        clean = {"before": _accuracy(base, x_test, y_test), "after": _accuracy(defended.deployed, x_test, y_test)}
        clean["cost"] = clean["before"] - clean["after"]
        seconds["inference_per_1k_before"] = round(_seconds_per_1k(base, x_test), 5)
        seconds["inference_per_1k_after"] = round(_seconds_per_1k(defended.deployed, x_test), 5)
        stage("adaptive check: non-adaptive vs adaptive PGD")
        check = adaptive_check(base, defended, data, eps=_pgd_eps(spec, loaded, data), seed=spec.seed)
        check["attacker"] = cls.adaptive
        flags = []
        names = {"naive": "PGD through the defense's true gradients", "transfer": "PGD made on the undefended model"}
        for key, what in names.items() if cls.kind == "input" else ():
            value = check[key]
            if value is not None and value > check["worst_case"] + 0.05:
                flags.append(
                    f"non-adaptive evaluation overstates the defense: {what} leaves {value:.1%} robust accuracy, "
                    f"the adaptive attacks ({cls.adaptive}) {check['worst_case']:.1%} at eps={check['eps']:g}"
                )
        job_rows = _job_rows(run_dir, defended_dir)
        result = HardenResult(
            defense=defense,
            params=chosen.params(),
            run_dir=run_dir,
            defended_dir=defended_dir,
            goals=_goal_rows(run_dir, defended_dir, job_rows),
            jobs=job_rows,
            clean_accuracy=clean,
            seconds=seconds,
            adaptive=check,
            flags=flags,
            defense_info=jsonable(dict(defended.info)),
        )
        write_text_atomic(defended_dir / HARDEN_FILE, json.dumps(result.to_dict(), indent=2, default=str))
        return result
    finally:
        if target is None:
            loaded.close()
