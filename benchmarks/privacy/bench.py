"""Privacy: aisec's LiRA (16 shadows) and MI-Face against ART on the same target, in one process.

Protocol (issue 4): scikit-learn's digits, pixels / 16; a seeded random 50% are the target's
members (``load_digits(test_size=0.5, seed=0)``, stratified); the target is an MLP 64-256-256-10
(ReLU) trained with Adam (lr 1e-3), 100 epochs, batches of 64, seed 0. One torch thread.

Membership: the members and the non-members are each split in two halves (seed 0). ART's
``MembershipInferenceBlackBox`` (attack model ``nn`` on the target's outputs and labels) is fitted
on the *calibration* halves, with their membership labels, a stronger attacker than LiRA needs.
aisec's LiRA (online, per-example and fixed variance, and offline) trains 16 shadows with the
target's recipe on complementary random halves of all 1,797 points (the attacker does not know
which of them are members) and uses no membership label. Both are scored on the same *evaluation*
halves (balanced, disjoint from ART's calibration data): AUC, TPR at 1% and 0.1% FPR. With 449
evaluation non-members the lowest resolvable FPR is 0.22%, so TPR at 0.1% FPR is the TPR at zero
false positives, for both libraries alike.

Shadow cost: the 16 shadows trained batched (one stacked model, ``train_stacked``) against the
same 16 trained one after another as ordinary ``nn.Sequential`` models (``train_mlp``); the ratio
is batched / sequential seconds.

Inversion: ART's ``MIFace`` (its defaults: max_iter 10000, window 100, threshold 0.99, lr 0.1,
batch 1) and aisec's ``mi-face`` (defaults, all 10 classes in one batch) on the same target;
classes recovered (reconstruction correlates best with its own class's training mean), mean
correlations and seconds.

Run::

    benchmarks/.venv/bin/python benchmarks/privacy/bench.py [--quick]

``--quick`` uses 20 epochs and 4 sequential shadows (the sequential time is then extrapolated to
16 and marked so); it writes ``benchmarks/results/privacy-quick.json`` instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy.inversion import MIFace, inversion_metrics
from aisec.attacks.privacy.lira import lira_scores
from aisec.attacks.privacy.metrics import bootstrap_intervals, membership_metrics
from aisec.attacks.privacy.shadows import (
    TrainingRecipe,
    half_masks,
    stacked_phi,
    train_mlp,
    train_stacked,
    true_class_logit,
)
from aisec.data import load_digits
from aisec.targets import TorchTarget

RESULTS = Path(__file__).resolve().parents[1] / "results"
K = 16


def _mm(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, Any]:
    m = membership_metrics(s_in, s_out)
    keys = ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "best_balanced_accuracy", "min_resolvable_fpr")
    out = {k: m[k] for k in keys}
    return out | bootstrap_intervals(s_in, s_out, n_boot=500, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    epochs = 20 if args.quick else 100
    n_seq = 4 if args.quick else K
    recipe = TrainingRecipe(hidden=(256, 256), epochs=epochs, lr=1e-3, batch_size=64)
    data = load_digits(test_size=0.5, seed=0)
    t0 = time.perf_counter()
    net = train_mlp(data.x_train, data.y_train, 10, recipe, seed=0)
    target_seconds = time.perf_counter() - t0
    target = TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu", name="digits-mlp")
    with torch.no_grad():
        test_acc = float((net(data.x_test).argmax(1) == data.y_test).float().mean())
        train_acc = float((net(data.x_train).argmax(1) == data.y_train).float().mean())

    # calibration / evaluation halves of members and non-members
    rng = np.random.default_rng(0)
    mem, non = rng.permutation(len(data.y_train)), rng.permutation(len(data.y_test))
    n_eval = min(len(mem), len(non)) // 2
    cal_m, ev_m = mem[n_eval:], mem[:n_eval]
    cal_n, ev_n = non[n_eval:], non[:n_eval]

    # -- aisec LiRA ------------------------------------------------------------------------------
    view = target.view("grey-box", "probabilities")
    pool_x = torch.cat([data.x_train, data.x_test])
    pool_y = torch.cat([data.y_train, data.y_test])
    gen = torch.Generator().manual_seed(0)
    masks = half_masks(len(pool_y), K, gen)
    t0 = time.perf_counter()
    shadows = train_stacked(pool_x, pool_y, masks, 10, recipe, gen)
    batched_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    phi_t = true_class_logit(view.predict_proba(pool_x), pool_y).numpy()
    phi_s = stacked_phi(shadows, pool_x, pool_y)
    lira: dict[str, Any] = {}
    n_tr = len(data.y_train)
    ev_in, ev_out = ev_m, n_tr + ev_n
    for label, online, fixed in (
        ("online-per-example", True, False),
        ("online-fixed", True, True),
        ("offline-per-example", False, False),
        ("offline-fixed", False, True),
    ):
        s = lira_scores(phi_t, phi_s, masks.numpy(), online=online, fixed=fixed)
        lira[label] = _mm(s[ev_in], s[ev_out])
    lira_score_seconds = time.perf_counter() - t0

    # sequential shadows, the ordinary way
    t0 = time.perf_counter()
    for k in range(n_seq):
        train_mlp(pool_x[masks[k]], pool_y[masks[k]], 10, recipe, seed=100 + k)
    seq_seconds = (time.perf_counter() - t0) * (K / n_seq)
    # the same comparison for aisec's cheap default recipe (one hidden layer of 64, 20 epochs)
    small = TrainingRecipe()
    t0 = time.perf_counter()
    train_stacked(pool_x, pool_y, masks, 10, small, torch.Generator().manual_seed(1))
    small_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    for k in range(K):
        train_mlp(pool_x[masks[k]], pool_y[masks[k]], 10, small, seed=200 + k)
    small_seq = time.perf_counter() - t0

    # -- ART black-box membership inference --------------------------------------------------------
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.attacks.inference.model_inversion import MIFace as ArtMIFace
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=net,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    xtr, ytr, xte, yte = (t.numpy() for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    art_mi: dict[str, Any] = {}
    for model_type in ("nn", "rf", "gb"):
        t0 = time.perf_counter()
        bb = MembershipInferenceBlackBox(clf, attack_model_type=model_type)
        bb.fit(x=xtr[cal_m], y=ytr[cal_m], test_x=xte[cal_n], test_y=yte[cal_n])
        p_in = bb.infer(xtr[ev_m], ytr[ev_m], probabilities=True)[:, -1]
        p_out = bb.infer(xte[ev_n], yte[ev_n], probabilities=True)[:, -1]
        art_mi[model_type] = _mm(np.asarray(p_in, float), np.asarray(p_out, float)) | {
            "seconds": time.perf_counter() - t0
        }
    best_art = max(art_mi.values(), key=lambda m: (m["tpr_at_0.1pct_fpr"], m["auc"]))

    # -- inversion -----------------------------------------------------------------------------------
    means = torch.stack([data.x_train[data.y_train == c].mean(0) for c in range(10)])
    t0 = time.perf_counter()
    art_inv = ArtMIFace(clf, verbose=False)
    rec = art_inv.infer(x=None, y=np.arange(10))
    art_inv_seconds = time.perf_counter() - t0
    art_inv_m = inversion_metrics(torch.as_tensor(rec).float(), means) | {"seconds": art_inv_seconds}
    f = MIFace().run(target.view("white-box", "probabilities"), data, AttackContext(seed=0))
    ours_inv = {k: f.metrics[k] for k in ("classes_recovered", "n_classes", "mean_own_correlation")}
    ours_inv |= {"mean_best_other_correlation": f.metrics["mean_best_other_correlation"], "seconds": f.seconds}

    headline = lira["online-fixed"]  # the default of aisec's lira
    best_lira = max(lira.values(), key=lambda m: (m["tpr_at_0.1pct_fpr"], m["auc"]))
    result = {
        "command": "benchmarks/.venv/bin/python benchmarks/privacy/bench.py" + (" --quick" if args.quick else ""),
        "protocol": {
            "data": "sklearn digits / 16, load_digits(test_size=0.5, seed=0): 898 members, 899 non-members",
            "target": f"MLP 64-256-256-10, Adam 1e-3, {epochs} epochs, batch 64, seed 0",
            "target_train_accuracy": train_acc,
            "target_test_accuracy": test_acc,
            "target_train_seconds": target_seconds,
            "evaluation": f"{n_eval} members + {n_eval} non-members, disjoint from ART's calibration halves",
            "torch_threads": 1,
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        },
        "membership": {
            "aisec_lira_16": lira,
            "aisec_lira_score_seconds": lira_score_seconds,
            "art_blackbox": art_mi,
            "ratio_tpr_at_0.1pct_fpr_lira_default_vs_best_art": (
                headline["tpr_at_0.1pct_fpr"] / best_art["tpr_at_0.1pct_fpr"]
                if best_art["tpr_at_0.1pct_fpr"] > 0
                else None
            ),
            "best_lira_variant_tpr_at_0.1pct_fpr": best_lira["tpr_at_0.1pct_fpr"],
            "best_art_tpr_at_0.1pct_fpr": best_art["tpr_at_0.1pct_fpr"],
            "ratio_auc_lira_default_vs_best_art": headline["auc"] / max(m["auc"] for m in art_mi.values()),
            "note": "ratio of TPRs is null when ART's TPR at 0.1% FPR is 0 (no member found before the first false positive)",
        },
        "shadows": {
            "k": K,
            "batched_seconds": batched_seconds,
            "sequential_seconds": seq_seconds,
            "sequential_measured_on": n_seq,
            "ratio_batched_over_sequential": batched_seconds / seq_seconds,
            "per_shadow_seconds_batched": batched_seconds / K,
            "default_recipe": {
                "recipe": "MLP 64-64-10, 20 epochs, batch 64",
                "batched_seconds": small_batched,
                "sequential_seconds": small_seq,
                "ratio_batched_over_sequential": small_batched / small_seq,
            },
        },
        "inversion": {
            "art_miface": art_inv_m,
            "aisec_mi_face": ours_inv,
            "ratio_seconds_aisec_over_art": ours_inv["seconds"] / art_inv_seconds,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("privacy-quick.json" if args.quick else "privacy.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
