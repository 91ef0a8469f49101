"""Availability attacks on the SMS spam filter: Nelson's dictionary and focused attacks, RONI, sponge inputs.

No peer library implements the dictionary or focused attack, RONI or sponge inputs for text
(ART 1.20.1 has none of them), so this benchmark records aisec's figures alone.

    benchmarks/.venv/bin/python benchmarks/poisoning/availability.py

writes ``benchmarks/results/poisoning-availability.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from aisec.attacks.availability.dictionary import build_dictionary, dictionary_poison, filter_rates
from aisec.attacks.availability.focused import FocusedAttack
from aisec.attacks.availability.sponge import Sponge
from aisec.attacks.base import AttackContext
from aisec.data import load_sms_spam
from aisec.defenses.data.roni import RoniConfig, roni_filter
from aisec.targets import SklearnTarget
from aisec.targets.recipe import SklearnRecipe

ROOT = Path(__file__).resolve().parents[2]
SMS = ROOT.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection"
OUT = ROOT / "benchmarks" / "results" / "poisoning-availability.json"
FRACTIONS = (0.01, 0.02, 0.05, 0.10)
N_TRUSTED = 1000
ROUND = 4


def pipelines() -> dict[str, Any]:
    return {
        "tfidf-logreg": make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000, random_state=0)),
        "counts-naive-bayes": make_pipeline(CountVectorizer(), MultinomialNB()),
    }


def ham_rejection(recipe: SklearnRecipe, x: Any, y: torch.Tensor, x_test: list[str], y_test: torch.Tensor) -> tuple:
    model = recipe.fit(x, y, seed=0)
    return filter_rates(model.view("white-box", "labels").predict(x_test), y_test, 1)


def main() -> None:
    torch.set_num_threads(1)
    data = load_sms_spam(SMS)
    x, y = list(data.x_train), data.y_train
    x_test, y_test = list(data.x_test), data.y_test
    variants = {
        "short (50 ham words, 5 per message; aisec default)": {"dictionary_size": 50, "words_per_message": 5},
        "whole dictionary (200 ham words per message; Nelson)": {"dictionary_size": 200, "words_per_message": None},
    }
    out: dict[str, Any] = {
        "command": "benchmarks/.venv/bin/python benchmarks/poisoning/availability.py",
        "data": {"name": "sms_spam", "n_train": len(y), "n_test": len(y_test), "n_ham_test": int((y_test == 0).sum())},
        "peer": "none: ART 1.20.1 has no dictionary/focused attack, RONI or text sponge; aisec figures alone",
        "python": platform.python_version(),
        "dictionary": {},
        "focused": {},
        "sponge": {},
    }
    for model_name, est in pipelines().items():
        recipe = SklearnRecipe(est)
        base_rej, base_det = ham_rejection(recipe, x, y, x_test, y_test)
        rows: dict[str, Any] = {"clean": {"ham_rejection_rate": base_rej, "spam_detection_rate": base_det}}
        for vname, v in variants.items():
            words = build_dictionary(x, y, size=v["dictionary_size"])
            curve = []
            for f in FRACTIONS:
                ps = dictionary_poison(x, y, fraction=f, dictionary=words, words_per_message=v["words_per_message"])
                rej, det = ham_rejection(recipe, ps.x, ps.y, x_test, y_test)
                rng = np.random.default_rng(0)
                trusted = np.zeros(len(ps.y), bool)
                trusted[rng.choice(np.flatnonzero(~ps.poisoned), N_TRUSTED, replace=False)] = True
                res, scores = roni_filter(ps, trusted, RoniConfig(base_size=300, calib_size=400, score="accuracy"))
                d_rej, d_det = ham_rejection(recipe, *ps.without(res.rejected), x_test, y_test)
                curve.append({
                    "poison_fraction": f, "n_poison": ps.n_poison,
                    "ham_rejection_rate": round(rej, ROUND), "spam_detection_rate": round(det, ROUND),
                    "roni": {"precision": round(scores["precision"], ROUND), "recall": round(scores["recall"], ROUND),
                             "n_rejected": scores["n_rejected"], "seconds": round(res.seconds, 3),
                             "ham_rejection_rate": round(d_rej, ROUND), "spam_detection_rate": round(d_det, ROUND)},
                })  # fmt: skip
                print(model_name, vname, curve[-1], flush=True)
            rows[vname] = curve
        out["dictionary"][model_name] = rows
        target = recipe.fit(x, y, seed=0)
        focused = {}
        for known in (0.1, 0.3, 0.5, 1.0):
            t0 = time.perf_counter()
            f = FocusedAttack(n_targets=10, known_fraction=known).run(
                target.view("black-box", "labels"), data, AttackContext(seed=0, recipe=recipe)
            )
            m = f.metrics
            focused[str(known)] = {k: m[k] for k in ("target_block_rate", "baseline_block_rate", "n_targets",
                                                       "mean_known_words", "n_poison_per_target",
                                                       "collateral_ham_rejection_rate")}  # fmt: skip
            focused[str(known)]["seconds"] = round(time.perf_counter() - t0, 2)
            print(model_name, "focused", known, focused[str(known)], flush=True)
        out["focused"][model_name] = focused
    # RONI speed: the exact incremental naive Bayes vs refitting the filter per candidate
    ps = dictionary_poison(x, y, fraction=0.05, dictionary=build_dictionary(x, y, size=200))
    rng = np.random.default_rng(0)
    trusted = np.zeros(len(ps.y), bool)
    trusted[rng.choice(np.flatnonzero(~ps.poisoned), N_TRUSTED, replace=False)] = True
    cfg = RoniConfig(base_size=300, calib_size=400, score="accuracy", resamples=1, n_reference=200)
    fast, _ = roni_filter(ps, trusted, cfg)
    sub = trusted.copy()
    cand = np.flatnonzero(~trusted)[:: max(1, (~trusted).sum() // 100)][:100]  # 100 candidates for the slow path
    keep = trusted | np.isin(np.arange(len(trusted)), cand)
    from aisec.attacks.poisoning.common import PoisonedSet

    small = PoisonedSet([ps.x[i] for i in np.flatnonzero(keep)], ps.y[keep], ps.poisoned[keep])
    slow, _ = roni_filter(small, sub[keep], cfg, learner=pipelines()["tfidf-logreg"])
    n_fast = int((~trusted).sum())
    out["roni_speed"] = {
        "fast_nb_candidates": n_fast, "fast_nb_seconds_per_resample": round(fast.seconds, 3),
        "refit_logreg_candidates": len(cand), "refit_logreg_seconds_per_resample": round(slow.seconds, 3),
        "speedup_per_candidate": round((slow.seconds / len(cand)) / (fast.seconds / n_fast), 1),
    }  # fmt: skip
    print(out["roni_speed"], flush=True)
    # sponge: the TF-IDF filter in process, at three input limits
    target = SklearnTarget(pipelines()["tfidf-logreg"].fit(x, y.numpy()))
    for limit in (160, 1000, 10_000):
        f = Sponge(max_chars=limit, repeats=200).run(target.view("black-box", "labels"), data, AttackContext(seed=0))
        out["sponge"][f"max_chars={limit}"] = {k: (round(v, ROUND) if isinstance(v, float) else v)
                                               for k, v in f.metrics.items()}  # fmt: skip
        print("sponge", limit, out["sponge"][f"max_chars={limit}"], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
