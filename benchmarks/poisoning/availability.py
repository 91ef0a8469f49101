"""Availability attacks on the SMS spam filter: Nelson's dictionary and focused attacks, RONI, sponge inputs.

No peer library implements the dictionary or focused attack, RONI or sponge inputs for text
(ART 1.20.1 has none of them), so this benchmark records aisec's figures alone.

    benchmarks/.venv/bin/python benchmarks/poisoning/availability.py [--part all|http]

writes ``benchmarks/results/poisoning-availability.json``. ``--part http`` runs only the sponge
against the same spam filter served over HTTP on loopback (a uvicorn subprocess: a bare FastAPI
endpoint, and the aisec gateway with a 1000-character text limit) and replaces only the
``sponge_http`` key of that file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
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
from aisec.errors import TargetUnavailableError
from aisec.targets import SklearnTarget
from aisec.targets.http import HttpTarget
from aisec.targets.recipe import SklearnRecipe

ROOT = Path(__file__).resolve().parents[2]
SMS = ROOT.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection"
OUT = ROOT / "benchmarks" / "results" / "poisoning-availability.json"
GATEWAY_TEXT_LIMIT = 1000
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


def sponge_metrics(f: Any, queries: int) -> dict[str, Any]:
    keys = ("latency_amplification_p50", "latency_amplification_p99", "size_matched_amplification_p50",
            "benign_latency_p50_ms", "benign_latency_p99_ms", "crafted_latency_p50_ms", "crafted_latency_p99_ms",
            "work_amplification")  # fmt: skip
    row = {k: (round(f.metrics[k], ROUND) if isinstance(f.metrics[k], float) else f.metrics[k]) for k in keys}
    return {**row, "queries": queries}


def serve_bare(model_file: str, port: int) -> None:
    """Child process: the spam filter behind a bare FastAPI endpoint speaking HttpTarget's plain JSON."""
    import joblib
    import uvicorn

    model, app = joblib.load(model_file), FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        return JSONResponse({"probabilities": model.predict_proba((await request.json())["inputs"]).tolist()})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_bare(model_file: Path, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx
    from bench import free_port  # benchmarks/gateway/bench.py

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(model_file), "--port", str(port)],
                            stdout=(folder / "bare.log").open("wb"), stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"bare server exited: {(folder / 'bare.log').read_text()[-2000:]}")
        try:
            httpx.get(url + "/docs", timeout=1.0)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("bare server not ready")


def sponge_http(model: Any, data: Any) -> dict[str, Any]:
    """The sponge against the spam filter in process, behind a bare FastAPI endpoint and behind the gateway."""
    import joblib
    import yaml

    sys.path.insert(0, str(ROOT / "benchmarks" / "gateway"))
    from bench import make_keys, start  # benchmarks/gateway/bench.py: uvicorn subprocess, API keys

    out: dict[str, Any] = {
        "command": "benchmarks/.venv/bin/python benchmarks/poisoning/availability.py --part http",
        "setup": "tfidf-logreg spam filter; Sponge(max_chars, repeats=200) as in 'sponge'; servers are uvicorn "
                 "subprocesses on loopback (1 thread each), one keep-alive HttpTarget (plain JSON) client; "
                 f"gateway: no monitors, audit log in a temp folder, inputs.max_text_length={GATEWAY_TEXT_LIMIT}",
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        joblib.dump(model, tmp / "spam.joblib")
        settings = {
            "model": {"kind": "sklearn", "path": str(tmp / "spam.joblib"), "trust": True, "name": "spam",
                      "modality": "text", "n_classes": 2},
            "keys_file": str(tmp / "keys.json"), "audit": {"path": str(tmp / "audit.sqlite")},
            "inputs": {"max_batch": 64, "dtypes": ["BYTES"], "max_text_length": GATEWAY_TEXT_LIMIT},
        }  # fmt: skip
        (tmp / "gateway.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
        token = make_keys(tmp, ["sponge"])["sponge"]
        procs = []
        try:
            p, bare_url = start_bare(tmp / "spam.joblib", tmp)
            procs.append(p)
            p, gw_url = start("gateway", tmp / "gateway.yaml", tmp)
            procs.append(p)
            targets = {
                "in_process": lambda: SklearnTarget(model),
                "bare_fastapi": lambda: HttpTarget(bare_url + "/predict", protocol="json", modality="text",
                                                   n_classes=2, name="bare", retries=0),
                "gateway": lambda: HttpTarget(gw_url + "/predict", protocol="json", modality="text", n_classes=2,
                                              name="gateway", retries=0, headers={"Authorization": f"Bearer {token}"}),
            }  # fmt: skip
            for name, make in targets.items():
                out[name] = {}
                for limit in (1000, 10_000):
                    view = make().view("black-box", "labels")
                    try:
                        f = Sponge(max_chars=limit, repeats=200).run(view, data, AttackContext(seed=0))
                        out[name][f"max_chars={limit}"] = sponge_metrics(f, view.queries)
                    except TargetUnavailableError as exc:  # the gateway refuses texts over its limit (HTTP 422)
                        out[name][f"max_chars={limit}"] = {"refused": f"{type(exc).__name__}: {exc}",
                                                           "queries": view.queries}  # fmt: skip
                    print("sponge_http", name, limit, out[name][f"max_chars={limit}"], flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return out


def write_key(key: str, value: Any) -> None:
    """Re-read the results file and replace only ``key``."""
    current = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    current[key] = value
    OUT.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {key} to {OUT}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "http"), default="all")
    parser.add_argument("--serve-bare", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.port)
        return
    torch.set_num_threads(1)
    data = load_sms_spam(SMS)
    if args.part == "http":
        model = pipelines()["tfidf-logreg"].fit(list(data.x_train), data.y_train.numpy())
        write_key("sponge_http", sponge_http(model, data))
        return
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
    out["sponge_http"] = sponge_http(target.estimator, data)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
