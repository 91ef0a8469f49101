"""Privacy: aisec's shadow-model attack (``shokri``) against ART's, and aisec's property inference.

Protocol (issue 4, as ``benchmarks/privacy/bench.py``): scikit-learn's digits, pixels / 16; a
seeded random 50% are the target's members (``load_digits(test_size=0.5, seed=0)``, stratified);
the target is an MLP 64-256-256-10 (ReLU) trained with Adam (lr 1e-3), 100 epochs, batches of 64,
seed 0 (``train_mlp``, the set-up of ``bench.py``). One torch thread.

Shadow-model membership attack (Shokri et al. 2017). Both attackers hold the same data sample:
all 1,797 points without membership labels; both train 16 shadows with the target's recipe on
random halves of it, label the shadows' answers in/out and fit attack models.

- aisec: the registered ``shokri`` attack (16 shadows, trained batched, gradient-boosted attack
  model per class on the sorted confidence vector and the true-class logit), seed 0, evaluated on
  ``membership_split(None, 0)``: 449 members and 449 non-members. LiRA (online, fixed variance) runs
  on the *same* shadows (the content-addressed cache) and evaluation set, for reference.
- ART 1.20.1: ``ShadowModels`` (16 copies of the target's architecture, ``PyTorchClassifier``
  fitted with the recipe: 100 epochs, batch 64, Adam 1e-3; ``disjoint_datasets=False``, member
  ratio 0.5) then ``MembershipInferenceBlackBox`` with attack model ``nn`` and ``rf`` fitted on the
  shadow dataset, scored on the same 898 evaluation points.

Property inference (Ganju et al. 2018; ART 1.20.1 has none: ``art.attacks.inference`` holds
attribute_inference, membership_inference, model_inversion and reconstruction only): the share of
digit 0 in the target's training data, 0.1 (the natural rate, the target's truth: 0.099) vs 0.3;
32 shadows with the target's recipe on 898 points each, white-box (first-layer neuron summary) and
black-box (outputs on 64 queries); meta-accuracy on held-out shadows (4-fold) with its exact 95%
interval, the guess for the target and seconds. Plus breast cancer, share of malignant 0.3 vs 0.7,
on a target trained on 200 points with a known share of 0.3 (MLP 30-64-2, 20 epochs).

Run::

    benchmarks/.venv/bin/python benchmarks/privacy/shokri_property.py [--part shokri|property]

Writes the top-level keys ``shokri`` and ``property`` of ``benchmarks/results/privacy.json``
(re-read right before writing; the other keys are left as they are).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parents[1] / "results" / "privacy.json"
K = 16
RECIPE = {"hidden": [256, 256], "epochs": 100, "lr": 1e-3, "batch_size": 64}
KEYS = ("auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "balanced_accuracy", "min_resolvable_fpr")


def _target() -> tuple[Any, Any, Any, dict[str, Any]]:
    from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
    from aisec.data import load_digits
    from aisec.targets import TorchTarget

    data = load_digits(test_size=0.5, seed=0)
    t0 = time.perf_counter()
    net = train_mlp(data.x_train, data.y_train, 10, TrainingRecipe(**{**RECIPE, "hidden": (256, 256)}), seed=0)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        info = {
            "target_train_accuracy": float((net(data.x_train).argmax(1) == data.y_train).float().mean()),
            "target_test_accuracy": float((net(data.x_test).argmax(1) == data.y_test).float().mean()),
            "target_train_seconds": seconds,
        }
    target = TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu", name="digits-mlp")
    return net, data, target, info


def _pick(m: dict[str, Any]) -> dict[str, Any]:
    out = {k: m[k] for k in KEYS if k in m}
    return out | {k: m[k] for k in ("auc_ci95", "tpr_at_1pct_fpr_ci95", "tpr_at_0.1pct_fpr_ci95") if k in m}


def run_shokri() -> dict[str, Any]:
    from aisec.attacks.base import AttackContext
    from aisec.attacks.privacy.lira import LiRA
    from aisec.attacks.privacy.metrics import bootstrap_intervals, membership_metrics
    from aisec.attacks.privacy.shokri import ShadowModelAttack

    net, data, target, info = _target()
    view = target.view("grey-box", "probabilities")
    aisec: dict[str, Any] = {}
    for label, kw in (("gbdt-per-class", {}), ("mlp-per-class", {"attack_model": "mlp"})):
        f = ShadowModelAttack(shadows=K, n_samples=None, n_bootstrap=500, **RECIPE, **kw).run(
            view, data, AttackContext(seed=0)
        )
        aisec[label] = _pick(f.metrics) | {"seconds": f.seconds, "summary": f.summary}
    lira = LiRA(shadows=K, n_samples=None, n_bootstrap=500, **RECIPE).run(view, data, AttackContext(seed=0))

    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox, ShadowModels
    from art.estimators.classification import PyTorchClassifier

    class RecipeClassifier(PyTorchClassifier):
        """ART's PyTorchClassifier whose ``fit`` defaults to the target's recipe (ShadowModels calls fit(x, y))."""

        def fit(self, x: np.ndarray, y: np.ndarray, batch_size: int = 64, nb_epochs: int = 0, **kw: Any) -> None:
            super().fit(x, y, batch_size=batch_size, nb_epochs=nb_epochs or RECIPE["epochs"], **kw)

    def template() -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(64, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 256),
            torch.nn.ReLU(),
            torch.nn.Linear(256, 10),
        )

    def art_clf(model: torch.nn.Module, cls: type = PyTorchClassifier) -> Any:
        return cls(
            model=model,
            loss=torch.nn.CrossEntropyLoss(),
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
            input_shape=(1, 8, 8),
            nb_classes=10,
            clip_values=(0.0, 1.0),
            device_type="cpu",
        )

    split = data.membership_split(None, 0)  # the evaluation set of aisec's run with seed 0
    (x_in, y_in), (x_out, y_out) = split.members, split.non_members
    pool_x = torch.cat([data.x_train, data.x_test]).numpy()
    pool_y = torch.cat([data.y_train, data.y_test]).numpy()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    sm = ShadowModels(art_clf(template(), RecipeClassifier), num_shadow_models=K, random_state=0)
    (mx, my, mp), (nx, ny, npred) = sm.generate_shadow_dataset(pool_x, np.eye(10)[pool_y], member_ratio=0.5)
    art_shadow_seconds = time.perf_counter() - t0
    target_clf = art_clf(net)
    art: dict[str, Any] = {"shadow_training_seconds": art_shadow_seconds}
    for model_type in ("nn", "rf"):
        t0 = time.perf_counter()
        bb = MembershipInferenceBlackBox(target_clf, attack_model_type=model_type)
        bb.fit(x=mx, y=my, test_x=nx, test_y=ny, pred=mp, test_pred=npred)
        p_in = np.asarray(bb.infer(x_in.numpy(), np.eye(10)[y_in.numpy()], probabilities=True), float)[:, -1]
        p_out = np.asarray(bb.infer(x_out.numpy(), np.eye(10)[y_out.numpy()], probabilities=True), float)[:, -1]
        m = membership_metrics(p_in, p_out) | bootstrap_intervals(p_in, p_out, n_boot=500, seed=0)
        m["balanced_accuracy"] = 0.5 * (float((p_in > 0.5).mean()) + 1.0 - float((p_out > 0.5).mean()))
        art[model_type] = _pick(m) | {"seconds": art_shadow_seconds + time.perf_counter() - t0}
    ours = aisec["gbdt-per-class"]
    best_art = max((art["nn"], art["rf"]), key=lambda m: (m["tpr_at_0.1pct_fpr"], m["auc"]))
    return {
        "command": "benchmarks/.venv/bin/python benchmarks/privacy/shokri_property.py --part shokri",
        "protocol": info
        | {
            "shadows": K,
            "recipe": "MLP 64-256-256-10, Adam 1e-3, 100 epochs, batch 64 (shadows of both libraries)",
            "attacker_data": "all 1,797 points, no membership labels; shadows on random halves",
            "evaluation": f"membership_split(None, 0): {len(y_in)} members + {len(y_out)} non-members",
            "torch_threads": torch.get_num_threads(),
            "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        },
        "aisec_shokri_16": aisec,
        "aisec_lira_16_same_shadows": _pick(lira.metrics) | {"seconds": lira.seconds},
        "art_shadow_models_16": art,
        "ratio_auc_aisec_vs_best_art": ours["auc"] / best_art["auc"],
        "ratio_tpr_at_1pct_fpr_aisec_vs_best_art": (
            ours["tpr_at_1pct_fpr"] / best_art["tpr_at_1pct_fpr"] if best_art["tpr_at_1pct_fpr"] > 0 else None
        ),
        "ratio_seconds_aisec_vs_art": ours["seconds"] / best_art["seconds"],
        "note": "aisec's seconds include training its 16 shadows (batched); LiRA reuses them from the cache",
    }


def run_property() -> dict[str, Any]:
    from aisec.attacks.base import AttackContext
    from aisec.attacks.privacy.property_inference import PropertyInference
    from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
    from aisec.data import load_breast_cancer
    from aisec.targets import TorchTarget

    _, data, target, info = _target()
    out: dict[str, Any] = {
        "command": "benchmarks/.venv/bin/python benchmarks/privacy/shokri_property.py --part property",
        "art": "none: ART 1.20.1 has no property inference attack (art.attacks.inference: attribute_inference, "
        "membership_inference, model_inversion, reconstruction)",
    }
    digits: dict[str, Any] = {"target": info, "true_share_digit_0": float((data.y_train == 0).float().mean())}
    for rep, knowledge in (("white-box", "white-box"), ("black-box", "grey-box")):
        cfg = {"proportions": [0.1, 0.3], "shadows": 16 if K < 16 else 32, "representation": rep, **RECIPE}
        f = PropertyInference(**cfg).run(target.view(knowledge, "probabilities"), data, AttackContext(seed=0))
        digits[rep] = _property_figures(f)
    out["digits_digit0_0.1_vs_0.3"] = digits

    base = load_breast_cancer(test_size=0.5, seed=0)
    pool_x, pool_y = torch.cat([base.x_train, base.x_test]), torch.cat([base.y_train, base.y_test])
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(pool_y.numpy() == 0), np.flatnonzero(pool_y.numpy() == 1)
    idx = np.concatenate([rng.choice(pos, 60, replace=False), rng.choice(neg, 140, replace=False)])
    rest = np.setdiff1d(np.arange(len(pool_y)), idx)
    cancer = dataclasses.replace(
        base, x_train=pool_x[idx], y_train=pool_y[idx], x_test=pool_x[rest], y_test=pool_y[rest]
    )
    net = train_mlp(cancer.x_train, cancer.y_train, 2, TrainingRecipe(hidden=(64,), epochs=20), seed=0)
    ct = TorchTarget(net, input_shape=(30,), modality="tabular", device="cpu")
    res: dict[str, Any] = {"target": "MLP 30-64-2, Adam 1e-3, 20 epochs, 200 points, malignant share 0.3"}
    for rep, knowledge in (("white-box", "white-box"), ("black-box", "grey-box")):
        f = PropertyInference(representation=rep, shadow_size=200, shadows=128).run(
            ct.view(knowledge, "probabilities"), cancer, AttackContext(seed=0)
        )
        res[rep] = _property_figures(f)
    out["breast_cancer_malignant_0.3_vs_0.7"] = res
    return out


def _property_figures(f: Any) -> dict[str, Any]:
    keys = (
        "meta_accuracy",
        "meta_accuracy_ci95",
        "p_value_vs_chance",
        "n_shadows",
        "shadow_size",
        "representation",
        "target_guess",
        "target_guess_confidence",
        "target_true_share",
    )
    return {k: f.metrics[k] for k in keys} | {"seconds": f.seconds, "queries": f.queries, "flags": f.flags}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("shokri", "property", "all"), default="all")
    ap.add_argument("--smoke", action="store_true", help="2 epochs, 4 shadows, nothing written (checks the script)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.smoke:
        global K
        K = 4
        RECIPE["epochs"] = 2
    os.environ["AISEC_CACHE"] = tempfile.mkdtemp(prefix="aisec-bench-")  # fresh: shadow seconds are real
    results: dict[str, Any] = {}
    if args.part in ("shokri", "all"):
        results["shokri"] = run_shokri()
    if args.part in ("property", "all"):
        results["property"] = run_property()
    if args.smoke:
        print(json.dumps(results, indent=2)[:3000])
        return
    current = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}  # re-read: others write other keys
    current.update(results)
    RESULTS.write_text(json.dumps(current, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
