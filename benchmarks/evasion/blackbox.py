"""Black-box evasion: aisec's Square and HopSkipJump against ART and torchattacks, same models, images, budget.

Protocol (issue 3): scikit-learn's digits, pixels / 16, aisec's seeded stratified 75/25 split
(seed 0); an MLP 64-256-256-10 and a CNN (conv32-conv64 3x3, maxpool, fc128, fc10) trained with
Adam (lr 1e-3). Every library attacks the same 100 test images (aisec's seeded subset, seed 0) in
this one process on one torch thread; queries are counted by a wrapper around the model, so each
library's count includes all its forward passes.

- Square, L-inf eps 0.1, 1,000 queries per image, p_init 0.05 for all three: robust accuracy
  (the share of the 100 images classified right after the attack) and seconds.
- HopSkipJump, L2, untargeted, 20 iterations: ART with its defaults (max_eval 10,000, init_eval
  100) runs first; aisec then gets ART's total query count as its budget and spends it all
  (``queries_per_input=None``), once more a fifth of it, and once with its default config
  (``aisec_defaults``: iterations 20, eps None, 100 images, the rest default, so at most 2,000
  queries per image) with ART's total as a cap. Median and mean L2 of the adversarials of the images
  the model classified right, success rate, seconds. The ``floor`` is plain PyTorch doing ART's query
  count in forward passes of ``HSJ_BATCH`` rows (argmax only, no attack logic), with the model as
  aisec's TorchTarget runs it (channels-last for the CNN) and as given (``default_layout_seconds``,
  how ART runs it; one run). ``goal`` tells whether a row has a median L2 no larger than ART's in at most a
  fifth of ART's seconds.

Run alone::

    benchmarks/.venv/bin/python benchmarks/evasion/blackbox.py [--quick]

writes ``benchmarks/results/evasion-blackbox.json``; ``benchmarks/evasion/run.py`` imports :func:`run`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from whitebox import ChannelsLast as _ChannelsLast  # noqa: E402  (the same models, training and helpers as white-box)
from whitebox import accuracy as _accuracy  # noqa: E402
from whitebox import art_classifier as _art_classifier  # noqa: E402
from whitebox import clock as _clock  # noqa: E402
from whitebox import device_of as _device_of  # noqa: E402
from whitebox import from_numpy as _from_numpy  # noqa: E402
from whitebox import models as _models  # noqa: E402
from whitebox import resolve as _resolve  # noqa: E402
from whitebox import to_numpy as _to_numpy  # noqa: E402
from whitebox import train as _train  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "evasion-blackbox.json"
COMMAND = "benchmarks/.venv/bin/python benchmarks/evasion/blackbox.py"
#: Rows per forward pass of the model for HopSkipJump, the same for both libraries (ART's ``batch_size``,
#: aisec's ``TorchTarget(batch_size=...)``). Measured per row on one thread: the MLP costs 2.24 us in passes
#: of 64 rows, 2.03 in 128, 1.95 in 256; the channels-last CNN 16.9, 16.7, 17.1 us; the CNN as given 31.8-32.7
#: us at every size. ART's HopSkipJump on 20 images takes the same time at 64 and 128 (CNN 4.95-5.05 s, MLP
#: 1.48-1.59 s) but 1.4x longer on the CNN at 256 (6.8-7.1 s): 128 is the size that slows neither library.
HSJ_BATCH = 128
#: Timed runs of each aisec HopSkipJump row and of each floor, and of ART's HopSkipJump (the fastest counts).
HSJ_REPEATS = 3
ART_HSJ_REPEATS = 2


class Counting(nn.Module):
    """Counts the inputs the attack sends through the model (its queries)."""

    def __init__(self, inner: nn.Module, tally: list[int] | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.tally = tally if tally is not None else [0]

    @property
    def count(self) -> int:
        return self.tally[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tally[0] += int(x.shape[0])
        return self.inner(x.reshape(-1, 1, 8, 8).float())

    def __deepcopy__(self, memo: dict[int, Any]) -> Counting:
        # aisec's TorchTarget runs a channels-last copy of a CNN: the copy counts into this tally
        return Counting(copy.deepcopy(self.inner, memo), self.tally).train(self.training)


def _square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, queries: int, repeats: int) -> dict[str, Any]:
    from aisec.attacks.base import AttackContext
    from aisec.attacks.integrity.square import Square
    from aisec.data import load_digits
    from aisec.targets import TorchTarget

    eps, p_init, out = 0.1, 0.05, {}
    data = load_digits(seed=0)
    try:
        from torchattacks import Square as TASquare
    except Exception as exc:  # torchattacks needs nothing from torchvision for Square, but say so if it does
        TASquare = None
        out["torchattacks"] = {"skipped": f"torchattacks could not be imported: {exc}"}
    times: list[float] = []
    ta_times: list[float] = []
    for _ in range(repeats):  # the same seed each time: the same result; aisec and torchattacks take turns
        counting = Counting(model)
        target = TorchTarget(counting, input_shape=(1, 8, 8), clip=(0.0, 1.0), device=_device_of(model))
        start = _clock()
        finding = Square(eps=eps, p_init=p_init, queries_per_input=queries, n_samples=len(y)).run(
            target.view("black-box", "probabilities"), data, AttackContext(seed=0)
        )
        times.append(_clock() - start)
        if TASquare is not None:
            ta_counting = Counting(model)
            ta = TASquare(ta_counting, norm="Linf", eps=eps, n_queries=queries, n_restarts=1, p_init=p_init, seed=0)
            start = _clock()
            x_adv = ta(x, y)
            ta_times.append(_clock() - start)
    out["aisec"] = {
        "robust_accuracy": round(finding.metrics["robust_accuracy"], 4),
        "seconds": round(min(times), 3),
        "seconds_each": [round(t, 3) for t in times],
        "queries": counting.count,
    }
    if TASquare is not None:
        out["torchattacks"] = {"robust_accuracy": round(_accuracy(model, x_adv, y), 4), "seconds": round(min(ta_times), 3),
                               "seconds_each": [round(t, 3) for t in ta_times], "queries": ta_counting.count}  # fmt: skip

    from art.attacks.evasion import SquareAttack

    counting = Counting(model)
    attack = SquareAttack(
        _art_classifier(counting), norm=np.inf, eps=eps, max_iter=queries - 1, p_init=p_init, nb_restarts=1,
        batch_size=len(y), verbose=False,
    )  # fmt: skip
    start = _clock()
    x_adv = _from_numpy(attack.generate(_to_numpy(x), y=_to_numpy(y)), x)
    seconds = _clock() - start
    out["art"] = {"robust_accuracy": round(_accuracy(model, x_adv, y), 4), "seconds": round(seconds, 3),
                  "queries": counting.count}  # fmt: skip
    best_peer = min(v["robust_accuracy"] for k, v in out.items() if k != "aisec" and "robust_accuracy" in v)
    out["ratios"] = {
        "robust_accuracy_aisec_minus_best_peer": round(out["aisec"]["robust_accuracy"] - best_peer, 4),
        **{f"seconds_{k}_over_aisec": round(v["seconds"] / out["aisec"]["seconds"], 2)
           for k, v in out.items() if k != "aisec" and "seconds" in v},
    }  # fmt: skip
    out["config"] = {"norm": "linf", "eps": eps, "queries_per_image": queries, "p_init": p_init, "images": len(y),
                     "timing": f"fastest of {repeats} runs for aisec and torchattacks (same seed, taking turns), one run for ART"}  # fmt: skip
    return out


def _l2_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> dict[str, Any]:
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
        fooled = model(x_adv).argmax(1) != y
    ok = clean_ok & fooled
    l2 = (x_adv - x).flatten(1).norm(dim=1)[ok]
    return {
        "median_l2": round(l2.median().item(), 4) if len(l2) else None,
        "mean_l2": round(l2.mean().item(), 4) if len(l2) else None,
        "success_rate": round(ok.sum().item() / max(int(clean_ok.sum()), 1), 4),
    }


def _floor(model: nn.Module, x: torch.Tensor, rows: int, channels_last: bool) -> float:
    """Seconds of plain forward passes (argmax only) over ``rows`` inputs in passes of HSJ_BATCH rows."""
    batch = x.repeat((HSJ_BATCH + len(x) - 1) // len(x), 1, 1, 1)[:HSJ_BATCH]
    if channels_last:
        model = _ChannelsLast(model)
        batch = batch.contiguous(memory_format=torch.channels_last)
    start = _clock()
    with torch.no_grad():
        for done in range(0, rows, HSJ_BATCH):
            model(batch[: min(HSJ_BATCH, rows - done)]).argmax(1)
    return _clock() - start


def _hsj(model: nn.Module, x: torch.Tensor, y: torch.Tensor, iterations: int, repeats: int) -> dict[str, Any]:
    from art.attacks.evasion import HopSkipJump as ARTHSJ

    from aisec.attacks.base import AttackContext
    from aisec.attacks.integrity.hopskipjump import HopSkipJump
    from aisec.data import load_digits
    from aisec.targets import TorchTarget

    out: dict[str, Any] = {}
    art_times = []
    for _ in range(ART_HSJ_REPEATS):  # np.random.seed(0) each time: the same result
        counting = Counting(model)
        art = ARTHSJ(_art_classifier(counting), norm=2, max_iter=iterations, max_eval=10_000, init_eval=100,
                     init_size=100, batch_size=HSJ_BATCH, verbose=False)  # fmt: skip
        np.random.seed(0)
        start = _clock()
        x_adv = _from_numpy(art.generate(_to_numpy(x)), x).float()
        art_times.append(_clock() - start)
    out["art"] = {**_l2_stats(model, x, y, x_adv), "seconds": round(min(art_times), 3),
                  "seconds_each": [round(t, 3) for t in art_times], "queries": counting.count}  # fmt: skip

    art_queries = counting.count
    rows = {  # row: (budget, config); every row attacks the same images with ART's iterations and no eps
        "aisec": (art_queries, {"queries_per_input": None}),
        "aisec_fifth_budget": (art_queries // 5, {"queries_per_input": None}),
        "aisec_defaults": (art_queries, {}),
    }
    times: dict[str, list[float]] = {key: [] for key in (*rows, "floor", "floor_default_layout")}
    metrics: dict[str, tuple[dict[str, Any], int]] = {}
    memory_format = ""
    for _ in range(repeats):  # the rows and the floors take turns, so a burst of load hits them alike
        for key, (budget, extra) in rows.items():  # the same seed each time: the same result
            counting = Counting(model)
            target = TorchTarget(
                counting, input_shape=(1, 8, 8), clip=(0.0, 1.0), device=_device_of(model), batch_size=HSJ_BATCH
            )
            memory_format = target.memory_format
            view = target.view("black-box", "labels", budget=budget)
            start = _clock()
            finding = HopSkipJump(iterations=iterations, eps=None, n_samples=len(y), **extra).run(
                view, load_digits(seed=0), AttackContext(seed=0)
            )
            times[key].append(_clock() - start)
            metrics[key] = (finding.metrics, counting.count)
        times["floor"].append(_floor(model, x, art_queries, memory_format == "channels_last"))
        if memory_format == "channels_last" and not times["floor_default_layout"]:  # one run: 21 s on the CNN
            times["floor_default_layout"].append(_floor(model, x, art_queries, False))
    for key, (budget, _) in rows.items():
        m, queries = metrics[key]
        out[key] = {
            "median_l2": round(m["median_l2"], 4),
            "mean_l2": round(m["mean_l2"], 4),
            "success_rate": round(m["success_rate"], 4),
            "seconds": round(min(times[key]), 3),
            "seconds_each": [round(t, 3) for t in times[key]],
            "queries": queries,
            "budget": budget,
        }
    out["floor"] = {"queries": art_queries, "seconds": round(min(times["floor"]), 3),
                    "seconds_each": [round(t, 3) for t in times["floor"]], "memory_format": memory_format,
                    "rows_per_forward_pass": HSJ_BATCH}  # fmt: skip
    if times["floor_default_layout"]:
        out["floor"]["default_layout_seconds"] = round(min(times["floor_default_layout"]), 3)
    keys = ("aisec", "aisec_fifth_budget", "aisec_defaults")
    out["ratios"] = {
        **{f"median_l2_over_art_{k}": round(out[k]["median_l2"] / out["art"]["median_l2"], 3) for k in keys},
        **{f"art_seconds_over_{k}": round(out["art"]["seconds"] / out[k]["seconds"], 2) for k in (*keys, "floor")},
        **{f"queries_over_art_{k}": round(out[k]["queries"] / art_queries, 3) for k in keys},
    }
    met = {k: out[k]["median_l2"] <= out["art"]["median_l2"] and out[k]["seconds"] <= out["art"]["seconds"] / 5
           for k in keys}  # fmt: skip
    out["goal"] = {
        "goal": "median L2 no larger than ART's in at most a fifth of ART's seconds",
        "art_seconds_over_5": round(out["art"]["seconds"] / 5, 3),
        "met": any(met.values()),
        "met_by": [k for k in keys if met[k]],
        "per_row": met,
        "floor_within_fifth": out["floor"]["seconds"] <= out["art"]["seconds"] / 5,
        "rows": "aisec: ART's query count spent in full; aisec_fifth_budget: a fifth of it spent in full; "
        "aisec_defaults: the default config (at most 2,000 queries per image) with ART's count as a cap",
    }
    out["config"] = {"norm": "l2", "iterations": iterations, "images": len(y), "art_max_eval": 10_000,
                     "art_init_eval": 100, "aisec_budget": "ART's total queries",
                     "rows_per_forward_pass": HSJ_BATCH, "aisec_memory_format": memory_format,
                     "timing": f"fastest of {repeats} runs for aisec and the floor (same seed, taking turns), "
                               f"of {ART_HSJ_REPEATS} for ART"}  # fmt: skip
    return out


def run(
    quick: bool = False, device: str | torch.device = "cpu", large: bool = False, only: list[str] | None = None
) -> dict[str, Any]:
    """Square (aisec, ART, torchattacks) and HopSkipJump (aisec, ART) on the digits MLP and CNN; ``device``
    (``"cpu"``, ``"cuda"``, ``"auto"``) is where the models, images and libraries run, ``large`` adds
    ``cnn_large`` (whitebox.py's large CNN)."""
    from aisec.data import load_digits

    dev = _resolve(device)
    torch.set_num_threads(1)
    load_before = [round(v, 2) for v in os.getloadavg()]
    data = load_digits(seed=0)
    n = 20 if quick else 100
    x, y = data.test_subset(n, 0)
    assert isinstance(x, torch.Tensor) and isinstance(data.x_train, torch.Tensor)
    assert isinstance(y, torch.Tensor) and isinstance(data.x_test, torch.Tensor)
    x, y = x.to(dev), y.to(dev)
    x_test, y_test = data.x_test.to(dev), data.y_test.to(dev)
    models = _models(large)
    if quick:
        models = {k: v for k, v in models.items() if k != "cnn"}
    if only is not None:
        models = {k: v for k, v in models.items() if k in only}
    results: dict[str, Any] = {}
    for name, model in models.items():
        model = _train(model, data.x_train.to(dev), data.y_train.to(dev))
        results[name] = {
            "clean_accuracy_test": round(_accuracy(model, x_test, y_test), 4),
            "clean_accuracy_attacked": round(_accuracy(model, x, y), 4),
            "square": _square(model, x, y, 200 if quick else 1000, 1 if quick else 3),
            "hopskipjump": _hsj(model, x, y, 5 if quick else 20, 1 if quick else HSJ_REPEATS),
        }
    import art
    import torchattacks

    out = {
        "benchmark": "evasion-blackbox",
        "command": COMMAND + (" --quick" if quick else ""),
        "quick": quick,
        "versions": {
            "torch": torch.__version__,
            "art": art.__version__,
            "torchattacks": torchattacks.__version__,
            "python": platform.python_version(),
        },
        "threads": 1,
        "load_average": {  # 1/5/15 min; the machine is shared
            "before": load_before,
            "after": [round(v, 2) for v in os.getloadavg()],
            "note": "os.getloadavg() at the start and the end of this run",
        },
        "results": results,
    }
    if dev.type != "cpu":
        out["device"] = str(dev)
        out["timing_sync"] = "torch.cuda.synchronize() before every clock reading"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 images, MLP only, fewer queries")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
