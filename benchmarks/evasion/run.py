"""The evasion benchmark: aisec against ART and torchattacks, white-box (whitebox.py), plus the black-box
(blackbox.py) and text (text.py) comparisons when those modules are present.

Run from the repository root::

    benchmarks/.venv/bin/python benchmarks/evasion/run.py [--quick] [--device cpu|cuda|auto] [--large]

writes ``benchmarks/results/evasion.json`` (``evasion-quick.json`` with ``--quick``). ``--device cuda`` (or
``auto`` on a machine with CUDA) runs the white-box and black-box parts with models, images and every library
on the GPU, adds the large CNN (``cnn_large``, also ``--large`` on the CPU) and merges its figures under the
top-level key ``"gpu"`` of that file (read-modify-write: the CPU figures stay; a CPU run keeps ``"gpu"``).
``--parts`` and ``--models`` split a run into pieces (each merged in turn), ``--output`` writes elsewhere.
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


PARTS = ("whitebox", "blackbox", "text")
#: Parts that follow ``--device``; text.py runs on the CPU only and is left out of a GPU run.
DEVICE_PARTS = ("whitebox", "blackbox")


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with ``new`` laid over it, dictionaries merged key by key (a model run alone joins the others)."""
    out = dict(old)
    for k, v in new.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_results(dest: Path, out: dict[str, Any], gpu: bool, partial: bool) -> dict[str, Any]:
    """Read-modify-write of ``dest``: a GPU run merges ``out`` under ``"gpu"`` and leaves every other key as it
    was; a CPU run writes ``out`` as the whole file (merged over it when ``partial``), keeping ``"gpu"``."""
    old: dict[str, Any] = json.loads(dest.read_text()) if dest.is_file() else {}
    if gpu:
        new = dict(old)
        new["gpu"] = merge(old.get("gpu", {}), out)
        new["gpu"]["goals"] = goals(new["gpu"])
    else:
        new = merge(old, out) if partial else dict(out)
        if "gpu" in old:
            new["gpu"] = old["gpu"]
        if partial:
            new["goals"] = goals(new)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(new, indent=2, default=float) + "\n")
    return new


def _names(text: str | None, allowed: tuple[str, ...], what: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise SystemExit(f"--{what}: {text!r}; allowed: {', '.join(allowed)}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="aisec vs ART and torchattacks on evasion attacks")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (MLP, eps 0.1, fewer images)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                        help="where models, images and libraries run (auto: cuda when available); default cpu")  # fmt: skip
    parser.add_argument("--large", action="store_true", help="add the large CNN (cnn_large); implied on cuda")
    parser.add_argument("--parts", help=f"comma-separated parts to run (default: all; {', '.join(PARTS)})")
    parser.add_argument("--models", help="comma-separated models to run (mlp, cnn, cnn_large; default: all of the run)")
    parser.add_argument("--output", type=Path, help="the results file (default benchmarks/results/evasion.json)")
    args = parser.parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    gpu = device == "cuda"
    large = args.large or gpu
    parts = _names(args.parts, PARTS, "parts")
    keep = _names(args.models, ("mlp", "cnn", "cnn_large"), "models")
    if parts is None:
        parts = list(DEVICE_PARTS) if gpu else list(PARTS)
    cmd = "benchmarks/.venv/bin/python benchmarks/evasion/run.py" + (" --quick" if args.quick else "")
    if argv is None:
        argv = sys.argv[1:]
    extra, skip = [], False
    for a in argv:  # the command as run, less --quick (first) and --output (a machine's own path)
        if not skip and a != "--quick" and not a.startswith("--output"):
            extra.append(a)
        skip = a == "--output"
    if extra:
        cmd += " " + " ".join(extra)
    out: dict[str, Any] = {
        "command": cmd,
        "quick": args.quick,
        "versions": _versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "note": "each part sets its own torch thread count (recorded in it); timings are wall-clock seconds "
        "from time.perf_counter in this one process, on a machine shared with other jobs",
    }
    if gpu:
        out["device"] = {
            "device": "cuda:0",
            "name": torch.cuda.get_device_name(0),
            "cuda": torch.version.cuda,
            "note": "models, images and every library on the GPU (ART: device_type gpu); torch.cuda.synchronize() "
            "before every clock reading; text.py is CPU-only and not run here",
        }
    elif large:
        out["large"] = True
    for name in parts:
        mod = _module(name)
        if mod is None:
            out[name] = {"skipped": f"benchmarks/evasion/{name}.py is absent"}
            continue
        start = time.perf_counter()
        load_before = [round(v, 2) for v in os.getloadavg()]
        try:
            if name in DEVICE_PARTS and (gpu or large or keep is not None):
                out[name] = mod.run(args.quick, device=device, large=large, only=keep)
            else:
                out[name] = mod.run(args.quick)
        except Exception as exc:  # one failing part must not lose the others' figures
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[name + "_seconds"] = round(time.perf_counter() - start, 1)
        # the machine is shared: the 1/5/15-minute load averages before and after each part say how much
        out[name + "_load_average"] = {"before": load_before, "after": [round(v, 2) for v in os.getloadavg()]}
        sys.stderr.write(f"{name} done in {out[name + '_seconds']} s\n")
    out["goals"] = goals(out)
    dest = args.output or RESULTS / ("evasion-quick.json" if args.quick else "evasion.json")
    write_results(dest, out, gpu, partial=parts != list(PARTS))
    sys.stderr.write(f"wrote {dest}" + (' (under "gpu")' if gpu else "") + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
