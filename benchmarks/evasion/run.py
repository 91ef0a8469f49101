"""The evasion benchmark: aisec against ART and torchattacks, white-box (whitebox.py), plus the black-box
(blackbox.py) and text (text.py) comparisons when those modules are present.

Run from the repository root::

    benchmarks/.venv/bin/python benchmarks/evasion/run.py [--quick]

writes ``benchmarks/results/evasion.json`` (``evasion-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def _module(name: str) -> Any | None:
    path = HERE / f"{name}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"evasion_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("aisec", "art", "torchattacks"):
        try:
            out[pkg] = getattr(__import__(pkg), "__version__", "?")
        except Exception as exc:  # a missing peer is recorded, not fatal
            out[pkg] = f"not importable: {exc}"
    return out


def goals(out: dict[str, Any]) -> dict[str, Any]:
    """Issue 3's goals, met or missed, gathered from the parts' figures (each part also keeps its own flags)."""
    res: dict[str, Any] = {}
    wb = out.get("whitebox", {}).get("models", {})
    for name, m in wb.items():
        for row in m.get("pgd", []):
            res[f"{name}_pgd_eps{row['eps']}"] = {k: v for k, v in row.items() if k.startswith("goal_")}
        for row in m.get("autoattack", []):
            res[f"{name}_robust_eval_eps{row['eps']}"] = {k: v for k, v in row.items() if k.startswith("goal_")}
        if "cw_l2" in m:
            res[f"{name}_cw_l2"] = {k: v for k, v in m["cw_l2"].items() if k.startswith("goal_")}
    bb = out.get("blackbox", {}).get("results", {})
    for name, m in bb.items():
        sq = m.get("square", {})
        peers = [v for k, v in sq.items() if k in ("art", "torchattacks") and "robust_accuracy" in v]
        if "aisec" in sq and peers:
            ta = sq.get("torchattacks", {})
            res[f"{name}_square"] = {
                "goal_robust_accuracy_no_higher_than_best_peer": sq["aisec"]["robust_accuracy"]
                <= min(v["robust_accuracy"] for v in peers),
                "goal_time_no_more_than_torchattacks": "seconds" in ta and sq["aisec"]["seconds"] <= ta["seconds"],
            }
        hsj = m.get("hopskipjump", {})
        if "art" in hsj:
            for key in ("aisec", "aisec_fifth_budget", "aisec_defaults"):
                if key in hsj:
                    res[f"{name}_hopskipjump_{key}"] = {
                        "goal_median_l2_no_larger_than_art": hsj[key]["median_l2"] <= hsj["art"]["median_l2"],
                        "goal_fifth_of_art_time": hsj[key]["seconds"] <= hsj["art"]["seconds"] / 5,
                    }
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="aisec vs ART and torchattacks on evasion attacks")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (MLP, eps 0.1, fewer images)")
    args = parser.parse_args(argv)
    cmd = "benchmarks/.venv/bin/python benchmarks/evasion/run.py" + (" --quick" if args.quick else "")
    out: dict[str, Any] = {
        "command": cmd,
        "quick": args.quick,
        "versions": _versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "note": "each part sets its own torch thread count (recorded in it); timings are wall-clock seconds "
        "from time.perf_counter in this one process, on a machine shared with other jobs",
    }
    for name in ("whitebox", "blackbox", "text"):
        mod = _module(name)
        if mod is None:
            out[name] = {"skipped": f"benchmarks/evasion/{name}.py is absent"}
            continue
        start = time.perf_counter()
        load_before = [round(v, 2) for v in os.getloadavg()]
        try:
            out[name] = mod.run(args.quick)
        except Exception as exc:  # one failing part must not lose the others' figures
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[name + "_seconds"] = round(time.perf_counter() - start, 1)
        # the machine is shared: the 1/5/15-minute load averages before and after each part say how much
        out[name + "_load_average"] = {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]}
        sys.stderr.write(f"{name} done in {out[name + '_seconds']} s\n")
    out["goals"] = goals(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    dest = RESULTS / ("evasion-quick.json" if args.quick else "evasion.json")
    dest.write_text(json.dumps(out, indent=2, default=float) + "\n")
    sys.stderr.write(f"wrote {dest}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
