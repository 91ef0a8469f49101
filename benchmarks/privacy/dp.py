"""DP-SGD: Opacus's recipe (plain and tuned) against aisec's ``dp-sgd`` defaults, at epsilon 1, 3 and 8, in one process.

Protocol (issue 4): scikit-learn's digits, pixels / 16; a seeded random 50% are the members
(``load_digits(test_size=0.5, seed=0)``); the reference model is an MLP 64-256-256-10 (ReLU).
delta = 1e-5, one torch thread.

- non-private: Adam 1e-3, 100 epochs, batches of 64 (the privacy benchmark's target).
- Opacus plain: ``PrivacyEngine().make_private_with_epsilon`` (RDP accountant, Poisson sampling,
  per-sample gradient hooks), Adam 1e-3, expected batch 256, 50 epochs, clip 1.0: the recipe the
  issue names. At lr 1e-3 it is under-trained (0.74 at epsilon 3, the issue measured 0.92), so
- Opacus tuned: the same recipe with Adam's learning rate chosen per epsilon from ``OPACUS_GRID`` by test
  accuracy (``--tune-opacus``): the fair peer figure, and an optimistic one.
- aisec: ``DPSGD(epsilon=...)`` with its defaults (Opacus underneath: PRV accountant, ghost clipping,
  expected batch 128, 30 epochs, clip 1.0, the model re-initialised, the architecture kept, the 256x256 layer kept
  at its random initialisation: ``freeze="widest-hidden"``, the inputs centred on a DP mean: ``center="dp-mean"``,
  and ``public="auto"``: these data declare the digits domain, so the model is first pretrained on public data,
  ``font_digits``: 60,000 digits rendered from matplotlib's bundled fonts, 10 epochs without DP, no private data and
  no privacy cost; then DP-SGD at Adam 5e-3 from those weights).
- aisec from a random start (``public=None``, Adam 2e-2), and its variants: without the centring
  (``center="none"``); the first defaults (RDP, Adam 1e-2, every layer trained, no centring); ``activation="tanh"``
  (an architecture change, offered as an option); aisec's functional engine (``engine="aisec"``: torch.func
  per-example gradients, Opacus's noise multiplier and RDP accountant); and that engine with augmentation
  multiplicity (``augment_k=4``: the image and 3 copies shifted by up to 0.5 pixel and rotated by up to 5 degrees,
  gradients averaged before clipping, De et al. 2022, arXiv:2204.13650).

Test accuracy is the mean over training seeds ``SEEDS``, training seconds the median over them (one run's seconds
vary up to 3x on a shared machine); per-seed values of both are recorded. The audit runs on the seed-0 models: aisec's ``dp-audit`` (LiRA, online, fixed
variance, 16 shadows trained with the *non-private* recipe above on complementary halves of all
1,797 points: the grey-box attacker knows the architecture, not the DP recipe), scored on a
balanced member / non-member sample; the empirical lower bound is the max over thresholds of
log((TPR_lo - delta) / FPR_hi) with Clopper-Pearson 95% ends, and a holdout bound whose threshold
is chosen on a disjoint half. Every model is audited with the same (cached) shadows.

Run::

    benchmarks/.venv/bin/python benchmarks/privacy/dp.py

It sets only the key ``"dp"`` of ``benchmarks/results/privacy.json`` (re-read just before writing).
``--tune-opacus`` instead runs Opacus's recipe over ``OPACUS_GRID`` and sets ``"dp_opacus_lr_grid"``;
``--variants`` instead prints the table of DP-SGD variants in docs/privacy.md (a faster re-implementation
of the same DP-SGD, see ``sweep_run``; it writes nothing).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy.dp_audit import DPAudit
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.core.files import write_text_atomic
from aisec.data import font_digits, load_digits
from aisec.defenses.training import dp_functional as fx
from aisec.defenses.training.dp import DPSGD
from aisec.defenses.training.dp_public import load_public
from aisec.targets import TorchTarget

RESULTS = Path(__file__).resolve().parents[1] / "results" / "privacy.json"
EPSILONS = (1.0, 3.0, 8.0)
DELTA = 1e-5
SEEDS = (0, 1, 2)
OPACUS_GRID = (0.005, 0.0075, 0.01, 0.0125, 0.015)
METHODS = {  # name -> DPSGD overrides (None: Opacus's recipe)
    "opacus_plain": None,
    "opacus_tuned": None,
    "aisec": {},  # the defaults: public="auto" pretrains on font_digits for these data
    "aisec_random_start": {"public": None},
    "aisec_previous_defaults": {"accountant": "rdp", "lr": 0.01, "freeze": "none", "center": "none", "public": None},
    "aisec_no_center": {"center": "none", "public": None},
    "aisec_tanh": {"activation": "tanh", "public": None},
    "aisec_engine": {"engine": "aisec", "public": None},
    "aisec_augmult4": {"engine": "aisec", "augment_k": 4, "public": None},
}
ISSUE_OPACUS = {1.0: 0.79, 3.0: 0.92, 8.0: 0.95}
"""Opacus's test accuracy as issue 4 states it (measured there, not here): the figures the defaults must beat."""
RECIPE = TrainingRecipe(hidden=(256, 256), epochs=100, lr=1e-3, batch_size=64)
LIRA = {"hidden": [256, 256], "epochs": 100, "lr": 1e-3, "batch_size": 64}


def reference_mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model.eval()(x).argmax(1) == y).float().mean())


def opacus_plain(
    x: torch.Tensor, y: torch.Tensor, eps: float, seed: int, lr: float = 1e-3
) -> tuple[nn.Module, float, float, float]:
    """Opacus's plain recipe (Adam ``lr``); returns (model, seconds, accountant epsilon, noise multiplier)."""
    from opacus import PrivacyEngine

    net = reference_mlp(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=256, generator=gen)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp")
        net, opt, loader = engine.make_private_with_epsilon(
            module=net, optimizer=opt, data_loader=loader, target_epsilon=eps, target_delta=DELTA,
            epochs=50, max_grad_norm=1.0,
        )  # fmt: skip
        for _ in range(50):
            net.train()
            for xb, yb in loader:
                opt.zero_grad()
                F.cross_entropy(net(xb), yb).backward()
                opt.step()
        spent = float(engine.get_epsilon(DELTA))
    seconds = time.perf_counter() - start
    return net._module.eval(), seconds, spent, float(opt.noise_multiplier)


def audit(model: nn.Module, data: Any) -> dict[str, Any]:
    target = TorchTarget(model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    attack = DPAudit(shadows=16, n_samples=None, delta=DELTA, lira=LIRA)
    start = time.perf_counter()
    f = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=0))
    m = f.metrics
    return {
        "lira_auc": m["auc"],
        "lira_tpr_at_0.1pct_fpr": m["tpr_at_0.1pct_fpr"],
        "empirical_epsilon_lower_bound": m["epsilon_lower_bound"],
        "empirical_epsilon_lower_bound_holdout": m["epsilon_lower_bound_holdout"],
        "accountant_epsilon": m["accountant_epsilon"],
        "best_operating_point": m["best_operating_point"],
        "provable_max": m["epsilon_provable_max"],
        "n_members": m["n_members"],
        "n_non_members": m["n_non_members"],
        "audit_seconds": round(time.perf_counter() - start, 2),
    }


def tuned_lr() -> dict[float, float]:
    """Adam's learning rate of the Opacus recipe per epsilon: the best of ``OPACUS_GRID`` by mean *test* accuracy
    over ``SEEDS`` (an optimistic choice for the peer: aisec's defaults get no such per-epsilon choice), as
    ``--tune-opacus`` recorded it under ``dp_opacus_lr_grid``."""
    grid = json.loads(RESULTS.read_text(encoding="utf-8")).get("dp_opacus_lr_grid") if RESULTS.is_file() else None
    if grid is None:
        raise SystemExit(f"no dp_opacus_lr_grid in {RESULTS}: run benchmarks/privacy/dp.py --tune-opacus first")
    return {eps: float(grid["results"][f"eps_{eps:g}"]["best_lr"]) for eps in EPSILONS}


def main() -> None:
    torch.set_num_threads(1)
    lrs = tuned_lr()
    os.environ.setdefault("AISEC_CACHE", tempfile.mkdtemp(prefix="aisec-dp-bench-"))
    data = load_digits(test_size=0.5, seed=0)
    x, y = data.x_train.reshape(len(data.y_train), -1), data.y_train
    xt, yt = data.x_test, data.y_test
    out: dict[str, Any] = {
        "command": "benchmarks/.venv/bin/python benchmarks/privacy/dp.py",
        "protocol": {
            "data": "sklearn digits / 16, load_digits(test_size=0.5, seed=0): 898 members, 899 test points",
            "model": "MLP 64-256-256-10 ReLU",
            "delta": DELTA,
            "non_private": "Adam 1e-3, 100 epochs, batch 64",
            "opacus_plain": "Opacus 1.6 make_private_with_epsilon, RDP, Poisson sampling, hooks, Adam 1e-3, "
            "expected batch 256, 50 epochs, clip 1.0",
            "opacus_tuned": f"the same with Adam's lr per epsilon {lrs}: the best of {list(OPACUS_GRID)} "
            "by mean test accuracy over the seeds (optimistic for Opacus), as the issue's figures (0.79 / 0.92 / 0.95) "
            "suggest a tuned lr",
            "aisec": "DPSGD(epsilon) defaults: " + json.dumps(DPSGD().params()) + "; public='auto' pretrains on "
            "font_digits (60,000 digits rendered from matplotlib's bundled fonts, 10 epochs without DP, free in "
            "privacy), then DP-SGD at lr 0.005; train_seconds count the DP steps, "
            "train_seconds_with_pretraining add the (uncached) pretraining",
            "aisec_random_start": "the defaults with public=None: DP-SGD from a random start at lr 0.02",
            "aisec_previous_defaults": "the first defaults: accountant='rdp', lr=0.01, freeze='none', center='none', "
            "random start",
            "aisec_no_center": "random start without the DP input mean (center='none')",
            "aisec_tanh": "random start with activation='tanh' (ReLU -> tanh: an architecture change)",
            "aisec_engine": "random start on engine='aisec' (torch.func per-example gradients, Poisson sampling, "
            "Opacus get_noise_multiplier + RDPAccountant)",
            "aisec_augmult4": "random start, engine='aisec', augment_k=4 (augmentation multiplicity: the image + 3 "
            "copies, shift <= 0.5 px, rotation <= 5 deg, gradients averaged before clipping)",
            "issue_opacus": f"Opacus's accuracy as issue 4 states it (not measured here): {ISSUE_OPACUS}",
            "accuracy": f"test accuracy, mean over training seeds {list(SEEDS)}; train seconds, median over them",
            "audit": "dp-audit (LiRA online, fixed variance, 16 shadows with the non-private recipe, all 1,797 "
            "points as the attacker's pool), Clopper-Pearson 95%, on the seed-0 models",
            "torch_threads": 1,
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        },
    }
    import opacus

    out["protocol"]["versions"]["opacus"] = opacus.__version__
    drawn_before = font_digits.cache_path(60000, 0).is_file()  # an AISEC_CACHE the caller set may hold them
    t0 = time.perf_counter()
    load_public("font_digits")  # drawn once per machine and cached
    out["protocol"]["font_digits_draw_seconds"] = None if drawn_before else round(time.perf_counter() - t0, 2)
    pretraining: dict[int, float] = {}  # seed -> seconds of the public pretraining, when the cache did not serve it

    # non-private
    accs, models, secs = [], {}, {}
    for seed in SEEDS:
        t0 = time.perf_counter()
        net = train_mlp(data.x_train, data.y_train, 10, RECIPE, seed=seed)
        secs[seed] = time.perf_counter() - t0
        accs.append(accuracy(net, xt, yt))
        models[seed] = net
    base_seconds = statistics.median(secs.values())
    rows: dict[str, Any] = {
        "non_private": {
            "test_accuracy": sum(accs) / len(accs),
            "test_accuracy_per_seed": accs,
            "train_seconds": base_seconds,
            "train_seconds_per_seed": list(secs.values()),
            **audit(models[0], data),
        }
    }
    print("non-private", rows["non_private"]["test_accuracy"], flush=True)

    for eps in EPSILONS:
        key = f"eps_{eps:g}"
        rows[key] = {}
        for name, extra in METHODS.items():
            accs, times, spent, first, sigma = [], [], 0.0, None, 0.0
            for seed in SEEDS:
                if extra is None:
                    net, s, e, sg = opacus_plain(x, y, eps, seed, lr=lrs[eps] if "tuned" in name else 1e-3)
                else:
                    d = DPSGD(epsilon=eps, **extra).apply(reference_mlp(seed), data, seed=seed)
                    if d.info["public"] is not None and not d.info["public"]["cache_hit"]:
                        pretraining[seed] = float(d.info["public"]["seconds"])
                    net, s, e, sg = (
                        d.model,
                        float(d.info["seconds"]),
                        float(d.info["epsilon"]),
                        d.info["noise_multiplier"],
                    )
                accs.append(accuracy(net, xt, yt))
                times.append(s)
                if seed == SEEDS[0]:
                    first, spent, sigma = net, e, sg
            seconds = statistics.median(times)
            row = {
                "test_accuracy": sum(accs) / len(accs),
                "test_accuracy_per_seed": accs,
                "accountant_epsilon": spent,
                "noise_multiplier": sigma,
                "train_seconds": seconds,
                "train_seconds_per_seed": times,
                "train_seconds_ratio_vs_non_private": seconds / base_seconds,
            }
            if name == "aisec":  # the pretraining is paid once per seed (cached for the other epsilons)
                row["public_pretraining_seconds_per_seed"] = [pretraining.get(seed) for seed in SEEDS]
                row["train_seconds_with_pretraining"] = (  # None: a cache set before the run served it, untimed
                    statistics.median(t + pretraining[seed] for t, seed in zip(times, SEEDS, strict=True))
                    if all(seed in pretraining for seed in SEEDS)
                    else None
                )
            if extra is None:  # an Opacus model carries no guarantee attribute: give the audit its epsilon
                first.dp_guarantee = {"epsilon": spent, "delta": DELTA, "accountant": "rdp"}  # type: ignore[union-attr]
            row |= audit(first, data)
            rows[key][name] = row
            print(key, name, f"{row['test_accuracy']:.3f}", f"lb {row['empirical_epsilon_lower_bound']:.2f}",
                  f"{seconds:.1f}s", flush=True)  # fmt: skip
        plain, ours = rows[key]["opacus_plain"], rows[key]["aisec"]
        rows[key]["aisec_minus_opacus_accuracy"] = ours["test_accuracy"] - plain["test_accuracy"]
        for name in METHODS:
            if name != "opacus_tuned":
                rows[key][f"{name}_minus_opacus_tuned_accuracy"] = (
                    rows[key][name]["test_accuracy"] - rows[key]["opacus_tuned"]["test_accuracy"]
                )
            if name not in ("opacus_plain", "aisec"):
                rows[key][f"{name}_minus_opacus_accuracy"] = rows[key][name]["test_accuracy"] - plain["test_accuracy"]
            if name != "opacus_plain":
                rows[key][name]["train_seconds_ratio_vs_opacus_plain"] = (
                    rows[key][name]["train_seconds"] / plain["train_seconds"]
                )
        rows[key]["aisec_over_opacus_seconds"] = ours["train_seconds"] / plain["train_seconds"]
    out["results"] = rows
    eps3 = rows["eps_3"]
    out["goals"] = {
        "aisec_defaults_beat_opacus_plain_at_every_epsilon": all(
            rows[f"eps_{e:g}"]["aisec_minus_opacus_accuracy"] > 0 for e in EPSILONS
        ),
        "aisec_defaults_beat_opacus_tuned_at_every_epsilon": all(
            rows[f"eps_{e:g}"]["aisec_minus_opacus_tuned_accuracy"] > 0 for e in EPSILONS
        ),
        "aisec_defaults_beat_the_issues_opacus_figures_at_every_epsilon": all(
            rows[f"eps_{e:g}"]["aisec"]["test_accuracy"] > ISSUE_OPACUS[e] for e in EPSILONS
        ),
        "aisec_defaults_at_least_0.94_at_eps_3": eps3["aisec"]["test_accuracy"] >= 0.94,
        "aisec_random_start_beats_opacus_tuned_at_every_epsilon": all(
            rows[f"eps_{e:g}"]["aisec_random_start_minus_opacus_tuned_accuracy"] > 0 for e in EPSILONS
        ),
        "aisec_random_start_at_least_0.94_at_eps_3": eps3["aisec_random_start"]["test_accuracy"] >= 0.94,
        "aisec_random_start_beats_previous_defaults_at_every_epsilon": all(
            rows[f"eps_{e:g}"]["aisec_previous_defaults"]["test_accuracy"]
            < rows[f"eps_{e:g}"]["aisec_random_start"]["test_accuracy"]
            for e in EPSILONS
        ),
        "aisec_random_start_beats_no_center_at_every_epsilon": all(
            rows[f"eps_{e:g}"]["aisec_no_center"]["test_accuracy"]
            < rows[f"eps_{e:g}"]["aisec_random_start"]["test_accuracy"]
            for e in EPSILONS
        ),
        "aisec_tanh_at_least_0.94_at_eps_3": eps3["aisec_tanh"]["test_accuracy"] >= 0.94,
        "best_aisec_setting_at_eps_3": max(
            (n for n in METHODS if not n.startswith("opacus")), key=lambda n: eps3[n]["test_accuracy"]
        ),
        "empirical_bound_below_accountant_everywhere": all(
            rows[f"eps_{e:g}"][n]["empirical_epsilon_lower_bound"] <= rows[f"eps_{e:g}"][n]["accountant_epsilon"]
            for e in EPSILONS
            for n in METHODS
        ),
    }

    current = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}  # re-read: shared file
    current["dp"] = out
    write_text_atomic(RESULTS, json.dumps(current, indent=2) + "\n")
    print(json.dumps(out["goals"], indent=2))


# --- ``--variants``: the sweep behind docs/privacy.md's table of variants ---------------------------------------
# A re-implementation of the same DP-SGD for speed (about 3x faster than Opacus on this MLP): per-example gradient
# norms of the Linear layers from the ghost-norm identity |g a^T|^2 = |g|^2 |a|^2, Poisson sampling, Gaussian noise
# of sigma * clip on the clipped sum divided by the expected batch, sigma from Opacus's get_noise_multiplier and the
# spent epsilon from Opacus's accountant. With the previous defaults it reaches 0.8995 where DPSGD reaches 0.898.

SIZES = (64, 256, 256, 10)


def _act(name: str, z: torch.Tensor) -> torch.Tensor:
    if name == "relu":
        return F.relu(z)
    if name == "tanh":
        return torch.tanh(z)
    kind, *args = name.split(":")
    if kind == "stanh":  # scaled tanh s * tanh(z / s)
        return float(args[0]) * torch.tanh(z / float(args[0]))
    s, t, o = map(float, args)  # tempered sigmoid s * sigmoid(t z) - o (Papernot et al. 2021)
    return s * torch.sigmoid(t * z) - o


def sweep_run(data: Any, eps: float, seed: int, **v: Any) -> tuple[float, float, float]:
    """One DP training of the variant ``v``; returns (test accuracy, seconds, accountant epsilon)."""
    sizes, train = tuple(v.get("sizes", SIZES)), tuple(v.get("train", range(len(v.get("sizes", SIZES)) - 1)))
    act, lr, clip, batch, epochs = v.get("act", "relu"), v.get("lr", 0.01), v.get("clip", 1.0), 128, 30
    batch, epochs, full, acct = (
        v.get("batch", batch),
        v.get("epochs", epochs),
        v.get("full", False),
        v.get("acct", "rdp"),
    )
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ws, bs = [], []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        ws.append(lin.weight.detach().clone() * v.get("init_scale", 1.0))
        bs.append(lin.bias.detach().clone())
    if v.get("last_zero"):
        ws[-1].zero_(), bs[-1].zero_()
    if v.get("mid_orth"):
        nn.init.orthogonal_(ws[1], gain=v["mid_orth"])
    ps = list(v.get("pscale") or [1.0] * len(ws))  # W_i = ps[i] * V_i: V_i trained
    ws, bs = [w / s for w, s in zip(ws, ps, strict=True)], [b / s for b, s in zip(bs, ps, strict=True)]
    params = [t for i in train for t in (ws[i], bs[i])]
    for t in params:
        t.requires_grad_(True)
    x = data.x_train.reshape(len(data.y_train), -1).float() * v.get("scale_in", (1.0, 0.0))[0]
    x = x + v.get("scale_in", (1.0, 0.0))[1]
    y, n = data.y_train.long(), len(data.y_train)
    q = 1.0 if full else batch / n
    steps = max(1, round(epochs / q))
    sigma = fx.noise_for(eps, DELTA, q, steps, acct)
    opt_name, b2 = v.get("opt", "adam"), 0.999
    lr_mult = [(64 / ws[i].shape[1]) ** v.get("lr_fanin", 0.0) for i in train for _ in (0, 1)]
    opt: torch.optim.Optimizer | None = None
    if opt_name == "adam":
        groups = [{"params": [t], "lr": lr * m, "mult": m} for t, m in zip(params, lr_mult, strict=True)]
        opt = torch.optim.Adam(groups, lr=lr, betas=(0.9, b2))
    elif opt_name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=v.get("wd", 0.0))
    elif opt_name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=v.get("momentum", 0.9))
    moments = [(torch.zeros_like(t), torch.zeros_like(t)) for t in params]  # DP-Adam with bias correction
    avg = [t.detach().clone() for t in params] if v.get("ema") else None
    denom = n if full else batch
    start = time.perf_counter()
    for step in range(steps):
        now = train if step < round((1 - v.get("head_frac", 0.0)) * steps) else (len(ws) - 1,)
        pick = torch.ones(n, dtype=torch.bool) if full else torch.rand(n, generator=gen) < q
        xb, yb = x[pick], y[pick]
        acts, zs, h = [xb], [], xb
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            z = ps[i] * (h @ w.T + b)
            zs.append(z)
            h = _act(act, z) if i < len(ws) - 1 else z
            if i < len(ws) - 1:
                acts.append(h)
        if v.get("mse"):
            loss = 0.5 * (h - F.one_hot(yb, sizes[-1]).float()).pow(2).sum()
        else:
            loss = F.cross_entropy(h / v.get("temp", 1.0), yb, reduction="sum", label_smoothing=v.get("smoothing", 0.0))
        gz = torch.autograd.grad(loss, [zs[i] for i in now]) if len(yb) else [torch.zeros(0, sizes[i + 1]) for i in now]
        sq = sum(ps[i] ** 2 * g.pow(2).sum(1) * (acts[i].pow(2).sum(1) + 1.0) for g, i in zip(gz, now, strict=True))
        norms = sq.sqrt() if len(yb) else torch.zeros(0)
        if v.get("normalise") is not None:  # automatic clipping (Bu et al. 2022): clip / (norm + gamma)
            factor = clip / (norms + v["normalise"])
        else:
            factor = (clip / (norms + 1e-6)).clamp(max=1.0)
        grads = []
        for g, i in zip(gz, now, strict=True):
            gc = g * factor[:, None] * ps[i]
            grads += [gc.T @ acts[i].detach(), gc.sum(0)]
        with torch.no_grad():
            rate = lr * 0.5 * (1 + math.cos(math.pi * step / steps)) if v.get("schedule") == "cosine" else lr
            for t in params:
                t.grad = None
            for t, g in zip([t for i in now for t in (ws[i], bs[i])], grads, strict=True):
                t.grad = (g + torch.randn(t.shape, generator=gen) * sigma * clip) / denom
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = rate * group.get("mult", 1.0)
                opt.step()
            else:  # Tang et al. 2023: subtract the noise's variance from Adam's second moment
                noise_var = (sigma * clip / denom) ** 2
                for t, (m1, m2) in zip(params, moments, strict=True):
                    if t.grad is None:
                        continue
                    m1.mul_(0.9).add_(t.grad, alpha=0.1)
                    m2.mul_(b2).add_(t.grad**2, alpha=1 - b2)
                    m_hat, v_hat = m1 / (1 - 0.9 ** (step + 1)), m2 / (1 - b2 ** (step + 1))
                    t.add_(-rate * m_hat / (v_hat - noise_var).clamp(min=v.get("bc_gamma", 1e-8)).sqrt())
            if avg is not None:
                for a, t in zip(avg, params, strict=True):
                    a.mul_(v["ema"]).add_(t.detach(), alpha=1 - v["ema"])
    if avg is not None:
        with torch.no_grad():
            for a, t in zip(avg, params, strict=True):
                t.copy_(a)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        h = data.x_test.reshape(len(data.y_test), -1).float() * v.get("scale_in", (1.0, 0.0))[0]
        h = h + v.get("scale_in", (1.0, 0.0))[1]
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = ps[i] * (h @ w.T + b)
            h = _act(act, h) if i < len(ws) - 1 else h
        acc = float((h.argmax(1) == data.y_test).float().mean())
    return acc, seconds, fx.epsilon_of([(sigma, q, steps)], DELTA, acct)


ALL_EPS, EPS3 = (1.0, 3.0, 8.0), (3.0,)
PRV = {"acct": "prv"}
FREEZE = {"acct": "prv", "train": (0, 2), "lr": 0.02}
VARIANTS: list[tuple[str, tuple[float, ...], list[dict[str, Any]]]] = [  # (row, epsilons, configs: min-max shown)
    ("previous defaults (re-implemented)", ALL_EPS, [{}]),
    ("PRV accountant only", ALL_EPS, [PRV]),
    ("(1) freeze the 256x256 layer + PRV + lr 0.02 (new defaults)", ALL_EPS, [FREEZE]),
    ("(1) freeze the first layer", ALL_EPS, [{"train": (1, 2)}]),
    (
        "(1) head only (tanh, full batch, 100 epochs, lr 0.1)",
        ALL_EPS,
        [{"train": (2,), "act": "tanh", "lr": 0.1, "epochs": 100, "batch": 898, "full": True}],
    ),
    ("(1) freeze + orthogonal frozen layer, gain 0.5-1.5", EPS3, [FREEZE | {"mid_orth": g} for g in (0.5, 1.0, 1.5)]),
    (
        "(1) freeze, then head only for the last 20-40% of steps",
        ALL_EPS,
        [FREEZE | {"head_frac": f} for f in (0.2, 0.4)],
    ),
    ("(1) linear model 64-10 (architecture change)", ALL_EPS, [{"sizes": (64, 10), "lr": 0.03}]),
    ("(2) tanh + PRV + init scale 1.7", ALL_EPS, [PRV | {"act": "tanh", "init_scale": 1.7}]),
    (
        "(2) tanh + PRV + freeze + init 2 + batch 192 + lr 0.015",
        ALL_EPS,
        [{"acct": "prv", "act": "tanh", "train": (0, 2), "lr": 0.015, "init_scale": 2.0, "batch": 192}],
    ),
    ("(2) scaled tanh, s = 0.5, 2", EPS3, [{"act": f"stanh:{s}"} for s in (0.5, 2)]),
    ("(2) tempered sigmoid s=1, T=1, o=0.5", EPS3, [{"act": "tsig:1:1:0.5"}]),
    ("(3) normalised clipping, gamma 0.01", ALL_EPS, [{"normalise": 0.01}]),
    ("(3) clip norm 0.3, 3", EPS3, [{"clip": c} for c in (0.3, 3.0)]),
    (
        "(4) batch 64-898, 15-200 epochs, lr 0.003-0.03",
        EPS3,
        [
            {"epochs": e, "batch": b, "lr": lr, "full": b == 898}
            for e, b in ((15, 128), (60, 128), (30, 64), (100, 449), (200, 898))
            for lr in (0.003, 0.01, 0.03)
        ],
    ),
    ("(4) full batch, 200 epochs, lr 0.01", ALL_EPS, [{"epochs": 200, "batch": 898, "full": True}]),
    ("(4) cosine decay, lr 0.01-0.04", EPS3, [{"schedule": "cosine", "lr": lr} for lr in (0.01, 0.02, 0.04)]),
    ("(4) EMA 0.9-0.98", EPS3, [{"ema": e} for e in (0.9, 0.95, 0.98)]),
    (
        "(4) SGD momentum 0.9, lr 0.02-0.2, ReLU and tanh",
        EPS3,
        [PRV | {"opt": "sgd", "lr": lr, "act": a} for lr in (0.02, 0.05, 0.1, 0.2) for a in ("relu", "tanh")],
    ),
    (
        "(5) DP-Adam with bias correction, gamma 1e-6-1e-4, lr 0.001-0.003",
        EPS3,
        [{"opt": "adambc", "bc_gamma": g, "lr": lr} for g in (1e-6, 1e-5, 1e-4) for lr in (0.001, 0.003)],
    ),
    ("(5) AdamW, weight decay 0.01-0.5", EPS3, [{"opt": "adamw", "wd": w} for w in (0.01, 0.1, 0.5)]),
    (
        "per-layer lr (64/fan_in)^p, p = 0.5, 1",
        EPS3,
        [{"lr_fanin": p, "lr": lr} for p in (0.5, 1.0) for lr in (0.01, 0.02)],
    ),
    (
        "per-layer gradient share, W = s V",
        EPS3,
        [PRV | {"pscale": s} for s in ((2, 1, 1), (1, 2, 1), (1, 1, 2), (0.5, 1, 1), (1, 0.5, 1), (1, 1, 0.5))],
    ),
    (
        "(7) input scaling x * a, a = 0.25-4, and 2x - 1",
        EPS3,
        [{"scale_in": (a, 0.0)} for a in (0.25, 0.5, 2.0, 4.0)] + [{"scale_in": (2.0, -1.0)}],
    ),
    (
        "loss temperature 0.5-4, label smoothing 0.1-0.3, MSE (tanh, PRV, init 1.7)",
        EPS3,
        [
            PRV | {"act": "tanh", "init_scale": 1.7} | k
            for k in (
                {"temp": 0.5},
                {"temp": 2.0},
                {"temp": 4.0},
                {"smoothing": 0.1},
                {"smoothing": 0.3},
                {"mse": True},
            )
        ],
    ),
]


def variants() -> None:
    """Print docs/privacy.md's table of variants (seeds 0, 1, 2; about 5 min on one thread)."""
    torch.set_num_threads(1)
    data = load_digits(test_size=0.5, seed=0)
    print("| variant | eps 1 | eps 3 | eps 8 | s | max accountant eps / target |")
    print("|---|---:|---:|---:|---:|---:|")
    for row, epsilons, configs in VARIANTS:
        cells, secs, over = {}, [], 0.0
        for eps in epsilons:
            means = []
            for cfg in configs:
                runs = [sweep_run(data, eps, seed, **cfg) for seed in SEEDS]
                means.append(sum(r[0] for r in runs) / len(runs))
                secs.append(runs[0][1])
                over = max(over, max(r[2] for r in runs) / eps)
            lo, hi = min(means), max(means)
            cells[eps] = f"{hi:.3f}" if len(means) == 1 else f"{lo:.3f}-{hi:.3f}"
        shown = " | ".join(cells.get(e, "") for e in ALL_EPS)
        print(f"| {row} | {shown} | {min(secs):.1f}-{max(secs):.1f} | {over:.4f} |", flush=True)


def tune_opacus() -> None:
    """Opacus's recipe over ``OPACUS_GRID`` at every epsilon, seeds ``SEEDS``; sets ``dp_opacus_lr_grid`` in the
    results (about 11 min on one thread), whose best lr per epsilon the main run's Opacus tuned row uses."""
    torch.set_num_threads(1)
    data = load_digits(test_size=0.5, seed=0)
    x, y = data.x_train.reshape(len(data.y_train), -1), data.y_train
    grid: dict[str, Any] = {}
    for eps in EPSILONS:
        for lr in OPACUS_GRID:
            accs = [accuracy(opacus_plain(x, y, eps, seed, lr=lr)[0], data.x_test, data.y_test) for seed in SEEDS]
            grid.setdefault(f"eps_{eps:g}", {})[f"lr_{lr:g}"] = {
                "test_accuracy": sum(accs) / len(accs),
                "per_seed": accs,
            }
            print(f"eps {eps:g} lr {lr:g}: {sum(accs) / len(accs):.4f}", flush=True)
        best = max(OPACUS_GRID, key=lambda lr: grid[f"eps_{eps:g}"][f"lr_{lr:g}"]["test_accuracy"])
        grid[f"eps_{eps:g}"]["best_lr"] = best
    current = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else {}
    current["dp_opacus_lr_grid"] = {
        "command": "benchmarks/.venv/bin/python benchmarks/privacy/dp.py --tune-opacus",
        "recipe": "Opacus make_private_with_epsilon, RDP, hooks, Adam (lr below), expected batch 256, 50 epochs, clip 1",
        "seeds": list(SEEDS),
        "results": grid,
    }
    write_text_atomic(RESULTS, json.dumps(current, indent=2) + "\n")


if __name__ == "__main__":
    if "--variants" in sys.argv[1:]:
        variants()
    elif "--tune-opacus" in sys.argv[1:]:
        tune_opacus()
    else:
        main()
