"""Output policies of the gateway: their benign accuracy cost against the extraction they allow.

One gateway per victim serves six keys, each under its own output policy (``policies.keys``):
full probabilities, top-3, rounding to 2 and to 1 decimals, label-preserving noise, label only.
Through every key, (a) the test split is answered and scored (benign accuracy of the labels and of
the argmax of the shown scores, and how far the shown scores are from the full probabilities),
and (b) aisec's own extraction attacks run through ``aisec.targets.HttpTarget`` (Open Inference
Protocol v2, the key in the ``Authorization`` header): ``equation-solving`` (Tramèr et al. 2016,
arXiv:1609.02943) with a black-box view, ``knockoff`` (Orekondy et al. 2019, arXiv:1812.02766) and
``thief`` (ActiveThief, Pal et al. 2020) with a grey-box view (they need the attacker's own
unlabeled sample). A view whose output kind forbids probabilities refuses the attacks that need
them. Fidelity (agreement of the stolen copy with the victim) is measured by the assessor against
the victim itself, in process, on the test split: never through the hardened API.

Victims: logistic regression on 8x8 digits (input (1, 8, 8), 10 classes: every attack) and on
breast cancer (30 features, 2 classes: equation solving).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.attacks.base import AttackContext
from aisec.core.budget import QueryBudget
from aisec.core.goals import Knowledge, OutputKind
from aisec.data.dataset import Dataset
from aisec.errors import AccessDeniedError, UnsupportedTargetError
from aisec.targets.base import Target, TargetView
from aisec.targets.http import HttpTarget
from aisec.targets.sklearn import SklearnTarget

POLICIES: dict[str, dict[str, Any]] = {
    "probabilities": {"mode": "probabilities"},
    "top-3": {"mode": "top-k", "top_k": 3},
    "round-2": {"mode": "probabilities", "decimals": 2},
    "round-1": {"mode": "probabilities", "decimals": 1},
    "noise-0.05": {"mode": "probabilities", "noise_std": 0.05},
    "label-only": {"mode": "label"},
}
#: The output kind an attacker's view has under each policy.
VIEW_OUTPUT = {"top-3": "top-k", "label-only": "labels"}


class GatewayClient(HttpTarget):
    """An HTTP client that also reads what the gateway's hardened answers hold.

    ``HttpTarget`` refuses score rows that do not sum to 1 (rounded answers) and does not read the
    v2 ``top_k_classes``/``top_k_scores`` outputs; an attacker renormalises the former and scatters
    the latter into a row of zeros, as done here.
    """

    def _decode_v2(self, body: Any, n: int) -> tuple[str, torch.Tensor]:
        outs = {o.get("name"): o for o in body.get("outputs", [])} if isinstance(body, dict) else {}
        if "top_k_classes" in outs and "top_k_scores" in outs and "probabilities" not in outs:
            classes = np.asarray(outs["top_k_classes"]["data"], dtype=np.int64).reshape(n, -1)
            scores = np.asarray(outs["top_k_scores"]["data"], dtype=np.float64).reshape(n, -1)
            probs = np.zeros((n, self.n_classes))
            np.put_along_axis(probs, classes, scores, axis=1)
            return "probabilities", self._probabilities(probs, n)
        return super()._decode_v2(body, n)

    def _probabilities(self, data: Any, n: int) -> torch.Tensor:
        probs = np.clip(np.asarray(data, dtype=np.float64).reshape(n, self.n_classes), 0.0, None)
        return torch.from_numpy((probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)).astype(np.float32))


class AssessedView(TargetView):
    """An attacker's view whose assessor measures against the victim in process, not through the API."""

    def __init__(self, target: Target, knowledge: str, output: str, budget: int | None, top_k: int,
                 assessor: Target) -> None:  # fmt: skip
        super().__init__(target, Knowledge.parse(knowledge), OutputKind.parse(output), QueryBudget(budget), top_k)
        self._assessor = assessor

    def evaluation_view(self) -> TargetView:
        return self._assessor.view("white-box", "probabilities")


def client(url: str, token: str, name: str, shape: tuple[int, ...], clip: tuple[float, float] | None,
           n_classes: int, modality: str) -> GatewayClient:  # fmt: skip
    return GatewayClient(url, protocol="v2", model_name=name, modality=modality, n_classes=n_classes,
                         input_shape=shape, clip=clip, batch_size=64, headers={"Authorization": f"Bearer {token}"},
                         retries=1)  # fmt: skip


def benign(url: str, token: str, name: str, x: np.ndarray, y: np.ndarray, full: np.ndarray) -> dict[str, Any]:
    """What a benign client under this key gets on the test split, and what it loses."""
    import httpx

    labels, shown = [], []
    with httpx.Client(timeout=30.0, headers={"Authorization": f"Bearer {token}"}) as h:
        for i in range(0, len(x), 64):
            batch = x[i : i + 64].astype(np.float32)
            body = {"inputs": [{"name": "x", "shape": list(batch.shape), "datatype": "FP32",
                                "data": batch.reshape(-1).tolist()}]}  # fmt: skip
            r = h.post(f"{url}/v2/models/{name}/infer", json=body)
            r.raise_for_status()
            outs = {o["name"]: o for o in r.json()["outputs"]}
            n = len(batch)
            labels.extend(outs["label"]["data"])
            rows = np.full((n, full.shape[1]), np.nan)
            if "probabilities" in outs:
                rows = np.asarray(outs["probabilities"]["data"], dtype=np.float64).reshape(n, -1)
            elif "top_k_scores" in outs:
                rows = np.zeros((n, full.shape[1]))
                cls = np.asarray(outs["top_k_classes"]["data"], dtype=np.int64).reshape(n, -1)
                np.put_along_axis(rows, cls, np.asarray(outs["top_k_scores"]["data"]).reshape(n, -1), axis=1)
            shown.append(rows)
    lab, scores = np.asarray(labels), np.concatenate(shown)
    has_scores = not np.isnan(scores).any()
    argmax = scores.argmax(1) if has_scores else lab  # what a client taking the top score sees
    return {
        "accuracy_labels": round(float((lab == y).mean()), 4),
        "accuracy_argmax_scores": round(float((argmax == y).mean()), 4),
        "labels_equal_victim": bool((lab == full.argmax(1)).all()),
        "mean_l1_score_error": round(float(np.abs(scores - full).sum(1).mean()), 4) if has_scores else None,
    }


def run_attack(make: Callable[[], Any], view: TargetView, data: Dataset, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        finding = make().run(view, data, AttackContext(seed=seed))
    except (AccessDeniedError, UnsupportedTargetError) as exc:
        return {"refused": "needs probabilities", "error": f"{type(exc).__name__}: {exc}", "queries": view.queries}
    m = finding.metrics
    out = {"fidelity": round(float(m["fidelity"]), 4), "queries": int(finding.queries),
           "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    for k in ("max_probability_error", "fit_residual", "max_parameter_error", "thief_accuracy"):
        if m.get(k) is not None:
            out[k] = float(f"{float(m[k]):.4g}")
    if "curve_queries" in m:
        out["curve_queries"], out["curve_fidelity"] = m["curve_queries"], [round(f, 4) for f in m["curve_fidelity"]]
    return out


def victims(tmp: Path) -> dict[str, dict[str, Any]]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    from aisec.data import load_breast_cancer, load_digits

    out = {}
    for name, data, shape, clip, modality, vr in (
        ("digits", load_digits(), (1, 8, 8), (0.0, 1.0), "image", [0.0, 1.0]),
        ("cancer", load_breast_cancer(), (30,), None, "tabular", [-20.0, 20.0]),
    ):
        xtr = data.x_train.numpy().reshape(len(data.x_train), -1).astype(np.float64)
        est = LogisticRegression(max_iter=3000, random_state=0).fit(xtr, data.y_train.numpy())
        joblib.dump(est, tmp / f"{name}.joblib")
        local = SklearnTarget(est, modality=modality, input_shape=shape, clip=clip)
        out[name] = {"data": data, "est": est, "file": tmp / f"{name}.joblib", "shape": shape, "clip": clip,
                     "modality": modality, "value_range": vr, "local": local,
                     "n_classes": len(est.classes_)}  # fmt: skip
    return out


def policy_extraction(tmp: Path, start: Callable[[Path], tuple[Any, str]], *, seed: int = 0,
                      thief_budget: int = 500) -> dict[str, Any]:  # fmt: skip
    """Run the whole comparison; ``start(config)`` starts a gateway and returns (process, url)."""
    import yaml

    from aisec.attacks.confidentiality.equation_solving import EquationSolving
    from aisec.gateway.keys import KeyStore

    try:
        from aisec.attacks.confidentiality.knockoff import Knockoff
        from aisec.attacks.confidentiality.thief import Thief
    except ImportError as exc:  # pragma: no cover - they exist now; kept for older trees
        Knockoff = Thief = None  # type: ignore[assignment,misc]
        missing = str(exc)
    torch.manual_seed(seed)
    results: dict[str, Any] = {}
    for vname, v in victims(tmp).items():
        folder = tmp / f"policy-{vname}"
        folder.mkdir()
        store = KeyStore(folder / "keys.json")
        keys = {p: store.create("predict", p) for p in POLICIES}
        settings = {
            "model": {"kind": "sklearn", "path": str(v["file"]), "trust": True, "input_shape": list(v["shape"]),
                      "name": vname, "modality": v["modality"], "n_classes": v["n_classes"]},
            "keys_file": str(folder / "keys.json"),
            "audit": {"path": str(folder / "audit.sqlite")},
            "inputs": {"max_batch": 64, "value_range": v["value_range"]},
            "policies": {"keys": {keys[p][1].id: POLICIES[p] for p in POLICIES}},
        }  # fmt: skip
        (folder / "gateway.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
        proc, url = start(folder / "gateway.yaml")
        data: Dataset = v["data"]
        x_test = data.x_test.numpy().astype(np.float64)
        y_test = data.y_test.numpy()
        full = v["est"].predict_proba(x_test.reshape(len(x_test), -1))
        per: dict[str, Any] = {}
        try:
            for p in POLICIES:
                token = keys[p][0]
                row: dict[str, Any] = {"policy": POLICIES[p], **benign(url, token, vname, x_test, y_test, full)}
                out, k = VIEW_OUTPUT.get(p, "probabilities"), POLICIES[p].get("top_k", 1)

                def view(knowledge: str, budget: int | None, out: str = out, k: int = k, token: str = token,
                         url: str = url, vname: str = vname, v: dict[str, Any] = v) -> AssessedView:  # fmt: skip
                    target = client(url, token, vname, v["shape"], v["clip"], v["n_classes"], v["modality"])
                    return AssessedView(target, knowledge, out, budget, k, v["local"])

                attacks: dict[str, Any] = {}
                d = int(np.prod(v["shape"]))
                attacks["equation-solving"] = run_attack(
                    lambda: EquationSolving(n_eval=None), view("black-box", d + 1 + 16), data, seed
                )
                if vname == "digits":
                    if Knockoff is None:
                        attacks["knockoff"] = attacks["thief"] = {"absent": missing}
                    else:
                        attacks["knockoff"] = run_attack(
                            lambda: Knockoff(queries=thief_budget, rounds=2, n_eval=None),
                            view("grey-box", thief_budget), data, seed,
                        )  # fmt: skip
                        attacks["thief"] = run_attack(
                            lambda: Thief(queries=thief_budget, rounds=2, n_eval=None),
                            view("grey-box", thief_budget), data, seed,
                        )  # fmt: skip
                row["attacks"] = attacks
                per[p] = row
        finally:
            proc.terminate()
            proc.wait(10)
        base = per["probabilities"]
        for row in per.values():
            row["accuracy_cost_labels"] = round(base["accuracy_labels"] - row["accuracy_labels"], 4)
            row["accuracy_cost_argmax_scores"] = round(
                base["accuracy_argmax_scores"] - row["accuracy_argmax_scores"], 4
            )
        results[vname] = {
            "victim": f"scikit-learn logistic regression on {vname}, input {list(v['shape'])}, "
            f"{v['n_classes']} classes, behind one gateway (one key per policy)",
            "test_inputs": len(x_test),
            "policies": per,
        }
    return {
        "what": "per output policy: benign accuracy on the test split and the fidelity aisec's own extraction "
        "attacks reach through the gateway (HttpTarget, protocol v2, the key's Authorization header)",
        "fidelity": "agreement of the stolen copy with the victim's labels on the whole test split, measured "
        "in process against the victim (not through the API)",
        "views": {
            "equation-solving": "black-box",
            "knockoff": "grey-box (unlabeled training inputs as pool), random sampling",
            "thief": "grey-box (unlabeled training inputs as pool)",
        },
        "budgets": {
            "equation-solving": "d + 1 + 16 check queries",
            "knockoff": f"{thief_budget}, thief trained at {thief_budget // 2} and {thief_budget} (curve)",
            "thief": f"{thief_budget}, two active rounds: {thief_budget // 2} and {thief_budget} (curve)",
        },
        "noise": "noise-0.05: Gaussian of std 0.05 on the probabilities, renormalised, label kept",
        "accuracy_cost": "accuracy under the full-probability key minus accuracy under the policy; "
        "'labels' reads the answer's label, 'argmax_scores' the top shown score (rounding can tie)",
        "seed": seed,
        **results,
    }


__all__ = ["POLICIES", "AssessedView", "GatewayClient", "policy_extraction"]
