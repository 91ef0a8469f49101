"""Poisoning: label flipping, a BadNets backdoor, and poison detectors, aisec against ART 1.20.1 in one process.

Protocol (issue 6): scikit-learn's digits, pixels / 16, ``load_digits(seed=0)`` (75% train, stratified),
and the SMS Spam Collection (``load_sms_spam(seed=0)``). Models, retrained by their recipe for every
poisoned or cleaned set with the same seed:

* digits MLP 64-128-64-10 (ReLU), Adam lr 2e-3, 40 epochs, batches of 64;
* the demo's digits CNN (``aisec.demo.DigitsCNN``), ``aisec.demo.train_classifier`` with 30 epochs,
  lr 2e-3, batches of 64 (the demo's recipe);
* the demo's spam filter: sublinear TF-IDF + logistic regression (C=10).

1. Label flipping (``aisec.attacks.poisoning.label_flip.flip_labels``, random, 5/10/20%): clean test
   accuracy of the retrained model, and confident learning's precision/recall on the flips plus the
   accuracy after retraining without what it flagged. ART has no label-flipping attack (checked:
   ``art.attacks.poisoning`` in 1.20.1), so aisec alone.
2. Backdoor, 5% of the training set, 2x2 patch of value 1 in the bottom-right corner, target 0,
   points stamped and relabelled in place: built by aisec's ``add_backdoor(mode="modify")`` and by
   ART's ``PoisoningAttackBackdoor`` (same trigger function, same chosen points); clean accuracy and
   attack success rate (triggered test inputs of other classes predicted 0).
3. Detectors on the SAME poisoned set and the same model trained on it: ART's ``ActivationDefence``
   (its defaults: FastICA to 10 dims, 2-means, ``smaller``; also ``relative-size``) and
   ``SpectralSignatureDefense`` (told the true poison share 0.05, eps multiplier 1.5) on a
   ``PyTorchClassifier`` wrapping the model as a flat ``nn.Sequential``, against aisec's detectors
   (defaults and the paper variants): precision, recall, flagged count, seconds, and clean accuracy and
   attack success of the model retrained without the flagged points. aisec's default detector is also
   run over seeds 0-4 (poison choice and training seed) on the MLP.
4. SMS filter: label flipping 5/10/20% with confident learning, and a token backdoor ("cf mn" appended,
   target ham, 5%) with aisec's detectors (ART has no text detector).

The dictionary attack and RONI on the filter are in ``benchmarks/poisoning/availability.py``.

Run::

    nice benchmarks/.venv/bin/python benchmarks/poisoning/bench.py [--quick]

``--quick`` runs the MLP only, seed 0, and writes ``benchmarks/results/poisoning-quick.json``. The JSON
is read, updated for this benchmark's keys and written back, so keys other scripts add are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from aisec.attacks.poisoning.backdoor import add_backdoor
from aisec.attacks.poisoning.common import PatchTrigger, PoisonedSet, TokenTrigger
from aisec.attacks.poisoning.label_flip import flip_labels
from aisec.data import Dataset, find_sms_spam, load_digits, load_sms_spam
from aisec.defenses.data.poison import Detection, evaluate_detection, get_detector, retrain_metrics
from aisec.demo import DigitsCNN, train_classifier
from aisec.targets.recipe import Recipe, SklearnRecipe, TorchRecipe

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "results"
TRIGGER = PatchTrigger(size=2, corner="bottom-right", value=1.0)
TARGET = 0
FRACTION = 0.05
GOAL = {"precision": 0.8, "recall": 0.9, "retrained_asr_below": 0.05}

torch.set_num_threads(1)
warnings.filterwarnings("ignore")


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )  # fmt: skip


def make_trainer(arch: str, digits: Dataset) -> Any:
    epochs = 40 if arch == "mlp" else 30

    def trainer(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        model = mlp() if arch == "mlp" else DigitsCNN()
        data = dataclasses.replace(digits, x_train=x, y_train=y)
        return train_classifier(model, data, epochs=epochs, lr=2e-3, batch_size=64, seed=seed)

    trainer.__qualname__ = f"digits_{arch}"
    return trainer


def flat(model: nn.Module) -> nn.Sequential:
    """The same layers (shared weights) as one flat Sequential, so ART sees every layer."""
    inner = model.net if hasattr(model, "net") else model
    return nn.Sequential(*list(inner))


def art_set(x: torch.Tensor, y: torch.Tensor, poisoned_idx: np.ndarray) -> PoisonedSet:
    """ART's PoisoningAttackBackdoor on the same points, with the same trigger as a perturbation function."""
    from art.attacks.poisoning import PoisoningAttackBackdoor

    def stamp(batch: np.ndarray) -> np.ndarray:
        return TRIGGER.apply(torch.from_numpy(batch)).numpy()

    attack = PoisoningAttackBackdoor(stamp)
    xp, _ = attack.poison(x[poisoned_idx].numpy(), y=np.full(len(poisoned_idx), TARGET), broadcast=True)
    x_new, y_new = x.clone(), y.clone()
    x_new[poisoned_idx] = torch.from_numpy(np.asarray(xp, dtype=np.float32))
    y_new[poisoned_idx] = TARGET
    mask = np.zeros(len(y), dtype=bool)
    mask[poisoned_idx] = True
    return PoisonedSet(x=x_new, y=y_new, poisoned=mask, clean_y=y)


def art_detections(model: nn.Module, ps: PoisonedSet) -> dict[str, Detection | str]:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        flat(model), loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0)
    )
    x = ps.x.numpy()
    onehot = np.eye(10, dtype=np.float32)[ps.y.numpy()]
    out: dict[str, Detection | str] = {}
    runs = {
        "art-activation-defence": lambda: ActivationDefence(clf, x, onehot).detect_poison(),
        "art-activation-defence-relative-size": lambda: ActivationDefence(clf, x, onehot).detect_poison(
            cluster_analysis="relative-size"
        ),
        "art-spectral-signature": lambda: SpectralSignatureDefense(
            clf, x, onehot, expected_pp_poison=FRACTION, eps_multiplier=1.5, batch_size=128
        ).detect_poison(),
    }
    for name, fn in runs.items():
        start = time.perf_counter()
        try:
            _, is_clean = fn()
        except Exception as exc:  # ART's own failures are a result to record
            out[name] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        flagged = np.asarray(is_clean) == 0
        out[name] = Detection(name, flagged, flagged.astype(float), time.perf_counter() - start)
    return out


AISEC_DETECTORS: list[tuple[str, str, dict[str, Any]]] = [
    ("aisec-spectral", "spectral", {}),
    ("aisec-spectral-penultimate", "spectral", {"representation": "penultimate"}),
    ("aisec-spectral-paper-rule", "spectral", {"representation": "penultimate", "threshold": "fraction"}),
    ("aisec-activation-clustering", "activation-clustering", {}),
    ("aisec-activation-clustering-ica", "activation-clustering", {"reduce": "ica"}),
    ("aisec-activation-clustering-inputs", "activation-clustering", {"representation": "inputs"}),
    ("aisec-isolation-forest", "isolation-forest", {}),
    ("aisec-isolation-forest-5pct", "isolation-forest", {"threshold": "contamination"}),
    ("aisec-confident-learning", "confident-learning", {}),
]


def row(
    det: Detection | str, ps: PoisonedSet, recipe: Recipe, data: Dataset, trigger: Any, seed: int
) -> dict[str, Any]:
    if isinstance(det, str):
        return {"error": det}
    rep = evaluate_detection(det, ps, recipe, data.x_test, data.y_test, trigger=trigger, target_label=TARGET, seed=seed)
    assert rep.retrained is not None
    return {
        "precision": round(rep.precision, 4),
        "recall": round(rep.recall, 4),
        "flagged": rep.flagged,
        "true_positives": rep.true_positives,
        "n_poison": rep.n_poison,
        "seconds": round(rep.seconds, 3),
        "retrained_clean_accuracy": round(rep.retrained.clean_accuracy, 4),
        "retrained_attack_success": None
        if rep.retrained.attack_success is None
        else round(rep.retrained.attack_success, 4),
    }


def digits_backdoor(arch: str, digits: Dataset, seed: int = 0) -> dict[str, Any]:
    trainer = make_trainer(arch, digits)
    recipe = TorchRecipe(trainer, input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0))
    assert isinstance(digits.x_train, torch.Tensor)
    clean = retrain_metrics(
        recipe,
        digits.x_train,
        digits.y_train,
        digits.x_test,
        digits.y_test,
        trigger=TRIGGER,
        target_label=TARGET,
        seed=seed,
    )
    ps = add_backdoor(
        digits.x_train,
        digits.y_train,
        fraction=FRACTION,
        trigger=TRIGGER,
        target_label=TARGET,
        seed=seed,
        mode="modify",
    )
    ps_art = art_set(digits.x_train, digits.y_train, np.flatnonzero(ps.poisoned))
    same = bool(torch.equal(ps.x, ps_art.x) and torch.equal(ps.y, ps_art.y))
    t0 = time.perf_counter()
    model = trainer(ps.x, ps.y, seed)
    train_s = time.perf_counter() - t0
    poisoned = retrain_metrics(
        recipe, ps.x, ps.y, digits.x_test, digits.y_test, trigger=TRIGGER, target_label=TARGET, seed=seed
    )
    art_poisoned = (
        poisoned
        if same
        else retrain_metrics(
            recipe, ps_art.x, ps_art.y, digits.x_test, digits.y_test, trigger=TRIGGER, target_label=TARGET, seed=seed
        )
    )
    detections: dict[str, Any] = {}
    for name, det in art_detections(model, ps).items():
        detections[name] = row(det, ps, recipe, digits, TRIGGER, seed)
    for label, name, params in AISEC_DETECTORS:
        model_arg = model if name != "confident-learning" else None
        det = get_detector(name, **params).detect(ps.x, ps.y, model=model_arg, seed=seed)
        detections[label] = row(det, ps, recipe, digits, TRIGGER, seed)
    return {
        "n_train": len(ps.y),
        "n_poison": ps.n_poison,
        "train_seconds": round(train_s, 2),
        "clean_model": {
            "clean_accuracy": round(clean.clean_accuracy, 4),
            "attack_success": round(clean.attack_success or 0.0, 4),
        },
        "backdoor_aisec": {
            "clean_accuracy": round(poisoned.clean_accuracy, 4),
            "attack_success": round(poisoned.attack_success or 0.0, 4),
        },
        "backdoor_art": {
            "clean_accuracy": round(art_poisoned.clean_accuracy, 4),
            "attack_success": round(art_poisoned.attack_success or 0.0, 4),
            "identical_to_aisec_set": same,
        },
        "detectors": detections,
    }


def seeds_sweep(arch: str, digits: Dataset, seeds: list[int]) -> dict[str, Any]:
    """aisec's default detector (spectral, inputs, auto cut) over several poison/training seeds."""
    trainer = make_trainer(arch, digits)
    recipe = TorchRecipe(trainer, input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0))
    rows = []
    assert isinstance(digits.x_train, torch.Tensor)
    for seed in seeds:
        ps = add_backdoor(
            digits.x_train,
            digits.y_train,
            fraction=FRACTION,
            trigger=TRIGGER,
            target_label=TARGET,
            seed=seed,
            mode="modify",
        )
        det = get_detector("spectral").detect(ps.x, ps.y, seed=seed)
        rows.append({"seed": seed, **row(det, ps, recipe, digits, TRIGGER, seed)})
    keys = ("precision", "recall", "retrained_attack_success")
    return {
        "per_seed": rows,
        "min": {k: min(r[k] for r in rows) for k in ("precision", "recall")},
        "max_asr": max(r[keys[2]] for r in rows),
    }


def label_flips(
    x: Any,
    y: torch.Tensor,
    x_test: Any,
    y_test: torch.Tensor,
    recipe: Recipe,
    n_classes: int,
    model_for_cl: Any,
    seed: int = 0,
) -> dict[str, Any]:
    clean = retrain_metrics(recipe, x, y, x_test, y_test, seed=seed)
    out: dict[str, Any] = {"clean_accuracy": round(clean.clean_accuracy, 4)}
    for frac in (0.05, 0.1, 0.2):
        ps = flip_labels(x, y, fraction=frac, n_classes=n_classes, seed=seed)
        poisoned = retrain_metrics(recipe, ps.x, ps.y, x_test, y_test, seed=seed)
        det = get_detector("confident-learning").detect(ps.x, ps.y, model=model_for_cl, seed=seed)
        rep = evaluate_detection(det, ps, recipe, x_test, y_test, seed=seed)
        assert rep.retrained is not None
        out[f"{int(frac * 100)}%"] = {
            "n_flipped": ps.n_poison,
            "accuracy_poisoned": round(poisoned.clean_accuracy, 4),
            "confident_learning": {
                "precision": round(rep.precision, 4),
                "recall": round(rep.recall, 4),
                "flagged": rep.flagged,
                "seconds": round(rep.seconds, 3),
                "accuracy_after_removal": round(rep.retrained.clean_accuracy, 4),
            },
        }
    return out


def spam(seed: int = 0) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    path = find_sms_spam(ROOT.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection")
    if path is None or not path.is_file():
        return {"skipped": "SMS Spam Collection not found"}
    data = load_sms_spam(path, seed=seed)
    pipe = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000))
    recipe = SklearnRecipe(pipe, modality="text", name="spam-filter")
    x, y = list(data.x_train), data.y_train
    flips = label_flips(x, y, data.x_test, data.y_test, recipe, 2, pipe, seed)
    trig = TokenTrigger(tokens=("cf", "mn"))
    ps = add_backdoor(x, y, fraction=FRACTION, trigger=trig, target_label=0, seed=seed, mode="modify")
    poisoned = retrain_metrics(recipe, ps.x, ps.y, data.x_test, data.y_test, trigger=trig, target_label=0, seed=seed)
    fitted = recipe.fit(ps.x, ps.y, seed=seed)
    from aisec.core.goals import Knowledge

    est = fitted.view(Knowledge.WHITE_BOX, "probabilities").parameters
    dets: dict[str, Any] = {}
    for label, name, params in [
        ("aisec-spectral", "spectral", {}),
        ("aisec-spectral-pipeline-features", "spectral", {"representation": "penultimate"}),
        ("aisec-isolation-forest", "isolation-forest", {}),
        ("aisec-confident-learning", "confident-learning", {}),
        ("aisec-token-trigger", "token-trigger", {}),
    ]:
        det = get_detector(name, **params).detect(
            ps.x, ps.y, model=est if name != "confident-learning" else pipe, seed=seed
        )
        rep = evaluate_detection(det, ps, recipe, data.x_test, data.y_test, trigger=trig, target_label=0, seed=seed)
        assert rep.retrained is not None
        dets[label] = {
            "precision": round(rep.precision, 4),
            "recall": round(rep.recall, 4),
            "flagged": rep.flagged,
            "seconds": round(rep.seconds, 3),
            "retrained_clean_accuracy": round(rep.retrained.clean_accuracy, 4),
            "retrained_attack_success": round(rep.retrained.attack_success or 0.0, 4),
        }
    return {
        "label_flipping": flips,
        "backdoor": {
            "trigger": "cf mn appended, target ham",
            "n_poison": ps.n_poison,
            "clean_accuracy": round(poisoned.clean_accuracy, 4),
            "attack_success": round(poisoned.attack_success or 0.0, 4),
            "detectors": dets,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    digits = load_digits(seed=0)
    assert isinstance(digits.x_train, torch.Tensor)
    archs = ["mlp"] if args.quick else ["mlp", "cnn"]
    result: dict[str, Any] = {}
    with threadpool_limits(limits=1):
        for arch in archs:
            recipe = TorchRecipe(make_trainer(arch, digits), input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0))
            result[f"digits_{arch}"] = {
                "backdoor": digits_backdoor(arch, digits),
                "label_flipping": label_flips(
                    digits.x_train, digits.y_train, digits.x_test, digits.y_test, recipe, 10, None
                ),
            }
            print(f"digits {arch} done after {time.perf_counter() - started:.0f}s", file=sys.stderr)
        result["digits_mlp"]["default_detector_over_seeds"] = seeds_sweep(
            "mlp", digits, [0] if args.quick else [0, 1, 2, 3, 4]
        )
        if not args.quick:
            result["sms_spam"] = spam()
    mlp_set = result["digits_mlp"]["backdoor"]["detectors"]
    best = mlp_set["aisec-spectral"]
    art_ac = mlp_set["art-activation-defence"]
    art_ss = mlp_set["art-spectral-signature"]
    sweep = result["digits_mlp"]["default_detector_over_seeds"]
    ratios = {
        "precision_aisec_spectral_over_art_activation_defence": None
        if "error" in art_ac or not art_ac["precision"]
        else round(best["precision"] / art_ac["precision"], 2),
        "precision_aisec_spectral_over_art_spectral_signature": None
        if "error" in art_ss or not art_ss["precision"]
        else round(best["precision"] / art_ss["precision"], 2),
        "recall_aisec_spectral_over_art_activation_defence": None
        if "error" in art_ac or not art_ac["recall"]
        else round(best["recall"] / art_ac["recall"], 2),
    }
    goals = {
        "target": GOAL,
        "precision_met": best["precision"] >= GOAL["precision"],
        "recall_met": best["recall"] >= GOAL["recall"],
        "retrained_asr_met": best["retrained_attack_success"] < GOAL["retrained_asr_below"],
        "over_seeds_met": sweep["min"]["precision"] >= GOAL["precision"]
        and sweep["min"]["recall"] >= GOAL["recall"]
        and sweep["max_asr"] < GOAL["retrained_asr_below"],
        "best_detector": "aisec-spectral (inputs, automatic per-class cut)",
    }
    out_path = OUT / ("poisoning-quick.json" if args.quick else "poisoning.json")
    doc: dict[str, Any] = json.loads(out_path.read_text()) if out_path.is_file() else {}
    doc.update(
        {
            "command": "nice benchmarks/.venv/bin/python benchmarks/poisoning/bench.py"
            + (" --quick" if args.quick else ""),
            "protocol": __doc__.split("Run::")[0].strip(),
            "environment": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "art": _art_version(),
                "cpu_threads": 1,
                "load_average": os.getloadavg(),
            },
            "detection": result,
            "ratios": ratios,
            "goals": goals,
            "seconds_total": round(time.perf_counter() - started, 1),
        }
    )
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({"goals": goals, "ratios": ratios}, indent=1))


def _art_version() -> str:
    import art

    return str(art.__version__)


if __name__ == "__main__":
    main()
