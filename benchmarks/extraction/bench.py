"""Model extraction on digits: aisec's thief and Knockoff Nets against ART's KnockoffNets, in one run.

Protocol: ``load_digits``, pixels/16, stratified 75/25 split with seed 0; the victim is a CNN
conv16-conv32-pool-fc64-fc10 trained on the training split; the attacker's pool is the 1,347
training images without labels; every thief has the victim's architecture from a fresh init;
fidelity is the agreement with the victim on the 450 test images. Budgets 100, 250 and 500 queries.
Also: the output-hardening defenses (benign cost, thief fidelity through them), the watermark
(verification, survival of extraction and fine-tuning), equation solving on a logistic regression
and the spam-word recovery on the SMS filter.

Run::

    benchmarks/.venv/bin/python benchmarks/extraction/bench.py [--quick]

writes ``benchmarks/results/extraction.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
SMS = ROOT / ".." / "shared" / "data" / "sms_spam" / "SMSSpamCollection"
OUT = ROOT / "benchmarks" / "results" / "extraction.json"
BUDGETS = (100, 250, 500)


def _victim(data: Any, seed: int = 0) -> nn.Module:
    from aisec.attacks.confidentiality._thief_nets import ThiefCNN

    torch.manual_seed(seed)
    model = ThiefCNN(1, 8, 8, 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(30):
        order = torch.randperm(len(data.y_train), generator=gen)
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    return model.eval()


def _agree(model: nn.Module, victim: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == victim(x).argmax(1)).float().mean().item()


def _art(victim: nn.Module, data: Any, budgets: tuple[int, ...]) -> dict[str, Any]:
    """ART 1.20's KnockoffNets: random (labels), random with probabilities, adaptive; thief = victim's architecture."""
    from art.attacks.extraction import KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    from aisec.attacks.confidentiality._thief_nets import ThiefCNN

    x_pool = data.x_train.numpy()
    soft_victim = nn.Sequential(victim, nn.Softmax(dim=1)).eval()

    def clf(model: nn.Module) -> PyTorchClassifier:
        return PyTorchClassifier(
            model, loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), lr=3e-3),
            input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu",
        )  # fmt: skip

    out: dict[str, Any] = {}
    runs = {
        "random_labels": (victim, "random", False),
        "random_probabilities": (soft_victim, "random", True),
        "adaptive_labels": (victim, "adaptive", False),
    }
    for name, (v, strategy, prob) in runs.items():
        out[name] = {}
        for b in budgets:
            torch.manual_seed(0)
            np.random.seed(0)
            thief = ThiefCNN(1, 8, 8, 10)
            attack = KnockoffNets(
                classifier=clf(v), batch_size_fit=32, batch_size_query=32, nb_epochs=60, nb_stolen=b,
                sampling_strategy=strategy, reward="all", use_probability=prob, verbose=False,
            )  # fmt: skip
            t0 = time.perf_counter()
            y = data.y_train.numpy() if strategy == "adaptive" else None  # ART's adaptive mode needs pool labels
            stolen = attack.extract(x_pool, y=y, thieved_classifier=clf(thief))
            out[name][str(b)] = {
                "fidelity": round(_agree(stolen.model.eval(), victim, data.x_test), 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
    return out


def _aisec(target: Any, data: Any, budgets: tuple[int, ...], names: tuple[str, ...]) -> dict[str, Any]:
    from aisec.attacks.base import AttackContext
    from aisec.attacks.confidentiality.knockoff import Knockoff
    from aisec.attacks.confidentiality.thief import Thief

    out: dict[str, Any] = {}
    for output in ("probabilities", "labels"):
        for name, make in (
            ("thief", lambda b: Thief(queries=b, steps=400, n_eval=None)),
            ("knockoff_random", lambda b: Knockoff(queries=b, n_eval=None)),
            ("knockoff_adaptive", lambda b: Knockoff(queries=b, sampling="adaptive", n_eval=None)),
        ):
            if name not in names:
                continue
            key = f"{name}_{output}"
            out[key] = {}
            for b in budgets:
                t0 = time.perf_counter()
                f = make(b).run(target.view("grey-box", output, budget=b), data, AttackContext(seed=0))
                m = f.metrics
                out[key][str(b)] = {
                    "fidelity": round(m["fidelity"], 4),
                    "thief_accuracy": round(m["thief_accuracy"], 4),
                    "queries": f.queries,
                    "curve_queries": m["curve_queries"],
                    "curve_fidelity": [round(v, 4) for v in m["curve_fidelity"]],
                    "seconds": round(time.perf_counter() - t0, 1),
                }
    return out


def _defenses(target: Any, data: Any, queries: int) -> dict[str, Any]:
    from aisec.defenses.output import OutputPolicy, evaluate_policy

    policies = {
        "none": OutputPolicy(),
        "labels": OutputPolicy(mode="labels"),
        "top-1": OutputPolicy(mode="top-k", k=1),
        "round-1": OutputPolicy(mode="round", decimals=1),
        "noise-gaussian-1.0": OutputPolicy(mode="noise", scale=1.0),
        "reverse-sigmoid": OutputPolicy(mode="reverse-sigmoid", beta=0.5, gamma=0.2),
    }
    rows = {}
    for name, pol in policies.items():
        r = evaluate_policy(target, pol, data, queries=queries, thief_params={"n_eval": None})
        rows[name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
    return rows


def _watermark(data: Any, queries: int) -> dict[str, Any]:
    from aisec.attacks.confidentiality._thief_nets import ThiefCNN
    from aisec.defenses.training.watermark import make_key, train_watermarked, verify_ownership, watermark_survival

    key = make_key((1, 8, 8), 10, n=50, seed=0)
    torch.manual_seed(0)
    wm = train_watermarked(ThiefCNN(1, 8, 8, 10), data.x_train, data.y_train, key, epochs=30, seed=0)
    plain = _victim(data)
    surv = watermark_survival(wm, key, data, queries=queries)
    v = verify_ownership(plain, key)
    surv["non_watermarked"] = {"verified": v.verified, "p_value": v.p_value, "agreement": v.agreement}
    return surv


def _linear(data: Any) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    from aisec.attacks.confidentiality.equation_solving import EquationSolving
    from aisec.data import load_breast_cancer
    from aisec.targets import SklearnTarget

    cancer = load_breast_cancer()
    est = LogisticRegression(max_iter=1000, random_state=0).fit(cancer.x_train.numpy(), cancer.y_train.numpy())
    f = EquationSolving(check_queries=0).run(
        SklearnTarget(est, input_shape=(30,)).view("black-box", "probabilities"), cancer
    )
    est10 = LogisticRegression(max_iter=3000).fit(
        data.x_train.reshape(len(data.x_train), -1).numpy(), data.y_train.numpy()
    )
    t10 = SklearnTarget(est10, modality="image", input_shape=(1, 8, 8), clip=(0.0, 1.0))
    g = EquationSolving(check_queries=0).run(t10.view("black-box", "probabilities"), data)
    return {
        name: {k: f2.metrics[k] for k in ("fidelity", "max_parameter_error", "max_probability_error")} | {"queries": f2.queries}
        for name, f2 in (("breast_cancer_binary_d30", f), ("digits_softmax_d64", g))
    }  # fmt: skip


def _words() -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from aisec.attacks.confidentiality.text_words import TextWords
    from aisec.data import load_sms_spam
    from aisec.targets import SklearnTarget

    if not SMS.is_file():
        return {"skipped": f"SMS Spam Collection not found at {SMS.resolve()}"}
    ds = load_sms_spam(SMS)
    pipe = make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000))
    pipe.fit(ds.x_train, ds.y_train.numpy())
    f = TextWords().run(SklearnTarget(pipe).view("black-box", "probabilities"), ds)
    keep = ("top_k_overlap", "sign_agreement", "rank_correlation", "max_weight_error", "candidates")
    return {k: f.metrics[k] for k in keep if k in f.metrics} | {"queries": f.queries}


PARTS = ("thief", "knockoff", "art", "defenses", "watermark", "linear")


def _ratios(result: dict[str, Any]) -> dict[str, Any]:
    aisec, art = result.get("aisec", {}), result.get("art", {}).get("random_labels", {})
    ratios: dict[str, Any] = {}
    for b, row in art.items():
        ratios[b] = {
            f"{name}_over_art_random_labels": round(aisec[name][b]["fidelity"] / row["fidelity"], 4)
            for name in (
                "thief_probabilities",
                "thief_labels",
                "knockoff_random_labels",
                "knockoff_random_probabilities",
            )
            if b in aisec.get(name, {})
        }
    return ratios


def _save(result: dict[str, Any]) -> dict[str, Any]:
    """Merge into the results file as it is now (parts may run in parallel processes), under a lock."""
    import fcntl

    OUT.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    with open(Path(tempfile.gettempdir()) / "aisec-extraction-bench.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged: dict[str, Any] = json.loads(OUT.read_text()) if OUT.is_file() else {}
        for key, value in result.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        merged["ratios"] = _ratios(merged)
        OUT.write_text(json.dumps(merged, indent=2, default=float) + "\n")
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 100-query budget only")
    parser.add_argument("--part", action="append", choices=PARTS, help="run only these parts (repeatable); "
                        "the results file is updated in place, so parts can run one after another")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    from aisec.data import load_digits
    from aisec.targets import TorchTarget

    parts = args.part or list(PARTS)
    budgets = (100,) if args.quick else BUDGETS
    data = load_digits()
    victim = _victim(data)
    acc = (victim(data.x_test).argmax(1) == data.y_test).float().mean().item()
    target = TorchTarget(victim, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu", name="digits-cnn")
    result: dict[str, Any] = {}
    result.update({
        "command": "benchmarks/.venv/bin/python benchmarks/extraction/bench.py" + (" --quick" if args.quick else ""),
        "protocol": "load_digits /16, stratified 75/25 split seed 0; victim CNN conv16-conv32-pool-fc64-fc10; "
        "pool = 1,347 training images without labels; thief = same architecture, fresh init; fidelity on 450 test images",
        "victim_test_accuracy": round(acc, 4),
        "platform": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1},
    })  # fmt: skip
    result = _save(result)
    for part in parts:
        t0 = time.perf_counter()
        new: dict[str, Any] = {}
        if part == "thief":
            new["aisec"] = _aisec(target, data, budgets, ("thief",))
        elif part == "knockoff":
            new["aisec"] = _aisec(target, data, budgets, ("knockoff_random", "knockoff_adaptive"))
        elif part == "art":
            new["art"] = _art(victim, data, budgets)
        elif part == "defenses":
            new["defenses_at_250_queries"] = _defenses(target, data, 250)
        elif part == "watermark":
            new["watermark"] = _watermark(data, 250)
        else:
            new["equation_solving"] = _linear(data)
            new["text_words"] = _words()
        new["seconds"] = {part: round(time.perf_counter() - t0, 1)}
        result = _save(new)  # only what this part measured: parts may run in parallel processes
    json.dump(result.get("ratios"), sys.stdout, indent=2)


if __name__ == "__main__":
    main()
