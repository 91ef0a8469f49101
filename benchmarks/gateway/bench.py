"""Gateway benchmark: overhead of the aisec gateway, and PRADA's extraction detection through it.

1. Latency and throughput, same machine, one run: the same scikit-learn model (logistic regression
   on breast cancer) called in-process, behind a bare FastAPI endpoint, behind the full gateway
   (``create_app``: API key, rate limiter, input checks, output policy, SQLite audit log, metrics)
   with no monitors, and behind the gateway with all five monitors. Every server runs under
   uvicorn in its own subprocess on loopback; one keep-alive httpx client sends one-row requests
   sequentially, in interleaved rounds so that load on the machine hits every variant alike.
2. Extraction detection through a real gateway serving a digits model with the ``prada`` monitor
   (action ``label-only``): a Jacobian-augmentation attacker (Papernot et al. 2017,
   arXiv:1602.02697) and 20 benign clients, each replaying 300 test images; the query after
   which the key's answers turn label-only is recorded.
3. Output policies against extraction (``policy_extraction.py``): per policy (probabilities,
   top-3, rounding to 2 and 1 decimals, noise, label only), the benign accuracy of the answers
   and the fidelity aisec's own extraction attacks reach through the gateway.

The latency part has the audit log under ``synchronous: normal`` (default) and ``full``.

Run: ``benchmarks/.venv/bin/python benchmarks/gateway/bench.py`` (writes
``benchmarks/results/gateway.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

COMMAND = "benchmarks/.venv/bin/python benchmarks/gateway/bench.py"
RESULTS = REPO / "benchmarks" / "results" / "gateway.json"


# ------------------------------------------------------------------------------------------ servers


def serve(kind: str, config: Path, port: int) -> None:
    """Child process: serve ``kind`` (``gateway`` or ``bare``) on loopback until killed."""
    import uvicorn

    if kind == "gateway":
        from aisec.gateway.app import create_app
        from aisec.gateway.settings import load_settings

        app = create_app(load_settings(config))
    else:
        app = bare_app(Path(json.loads(config.read_text())["model"]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def bare_app(model_file: Path) -> FastAPI:
    """The baseline: a FastAPI endpoint that only parses the JSON, calls the model and answers."""
    import joblib

    model = joblib.load(model_file)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        x = np.asarray((await request.json())["inputs"], dtype=np.float64)
        probs = model.predict_proba(x)
        return JSONResponse({"labels": probs.argmax(1).tolist(), "probabilities": probs.tolist()})

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, config: Path, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = (folder / f"{kind}-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--config", str(config), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    probe = "/v2/health/ready" if kind == "gateway" else "/docs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited: {(folder / log.name).read_text()[-2000:]}")
        try:
            if httpx.get(url + probe, timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{kind} server not ready")


# ------------------------------------------------------------------------------------------ setup


def write_gateway(folder: Path, model_file: Path, shape: list[int], value_range: list[float],
                  monitors: list[dict[str, Any]], reference: np.ndarray | None, audit_dir: Path | None = None,
                  synchronous: str = "normal") -> Path:  # fmt: skip
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "model": {"kind": "sklearn", "path": str(model_file), "trust": True, "input_shape": shape, "name": "m"},
        "keys_file": str(folder / "keys.json"),
        "audit": {"path": str((audit_dir or folder) / "audit.sqlite"), "synchronous": synchronous},
        "inputs": {"max_batch": 64, "value_range": value_range},
        "monitors": monitors,
    }
    if reference is not None:
        np.savez(folder / "reference.npz", x=reference)
        settings["reference_data"] = str(folder / "reference.npz")
    (folder / "gateway.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    return folder / "gateway.yaml"


def make_keys(folder: Path, names: list[str]) -> dict[str, str]:
    from aisec.gateway.keys import KeyStore

    store = KeyStore(folder / "keys.json")
    return {name: store.create("predict", name)[0] for name in names}


def stats_ms(times: list[float]) -> dict[str, float]:
    t = np.asarray(times) * 1e3
    return {
        "requests_per_s": round(1e3 / float(t.mean()), 1),
        "p50_ms": round(float(np.percentile(t, 50)), 3),
        "p99_ms": round(float(np.percentile(t, 99)), 3),
        "mean_ms": round(float(t.mean()), 3),
    }


# ------------------------------------------------------------------------------------------ part 1


def latency_bench(tmp: Path, shm: Path, n_requests: int, rounds: int) -> dict[str, Any]:
    import httpx
    import joblib
    from sklearn.linear_model import LogisticRegression

    from aisec.data import load_breast_cancer

    data = load_breast_cancer()
    x_train, y_train = data.x_train.numpy().astype(np.float64), data.y_train.numpy()
    x_test = data.x_test.numpy().astype(np.float64)
    model = LogisticRegression(max_iter=1000, random_state=0).fit(x_train, y_train)
    model_file = tmp / "cancer.joblib"
    joblib.dump(model, model_file)
    (tmp / "bare.json").write_text(json.dumps({"model": str(model_file)}))
    all_monitors = [{"name": n} for n in ("prada", "probing", "drift", "low-confidence", "latency")]
    rng = [-20.0, 20.0]
    configs = {  # the audit log on the temp folder's disk (default), or on tmpfs where fsync costs nothing
        "gateway": write_gateway(tmp / "gw", model_file, [30], rng, [], None),
        "gateway_audit_full": write_gateway(tmp / "gwf", model_file, [30], rng, [], None, synchronous="full"),
        "gateway_audit_tmpfs": write_gateway(tmp / "gwt", model_file, [30], rng, [], None, shm / "gwt"),
        "gateway_monitors_audit_tmpfs": write_gateway(
            tmp / "gwm", model_file, [30], rng, all_monitors, x_train, shm / "gwm"
        ),
    }
    tokens = {name: make_keys(cfg.parent, ["bench"])["bench"] for name, cfg in configs.items()}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        p, bare_url = start("bare", tmp / "bare.json", tmp)
        procs.append(p)
        urls = {"bare_fastapi": bare_url}
        for name, cfg in configs.items():
            p, urls[name] = start("gateway", cfg, cfg.parent)
            procs.append(p)
        bodies = [json.dumps({"inputs": [row.tolist()]}).encode() for row in x_test]
        times: dict[str, list[float]] = {"in_process": [], **{k: [] for k in urls}}
        with httpx.Client(timeout=10.0) as client:
            heads = {k: {"Content-Type": "application/json"} for k in urls}
            for name in configs:
                heads[name]["Authorization"] = f"Bearer {tokens[name]}"

            def one(name: str, i: int) -> float:
                t0 = time.perf_counter()
                if name == "in_process":
                    model.predict_proba(x_test[i % len(x_test)][None])
                else:
                    r = client.post(urls[name] + "/predict", content=bodies[i % len(bodies)], headers=heads[name])
                    if r.status_code != 200:
                        raise RuntimeError(f"{name}: HTTP {r.status_code} {r.text[:200]}")
                return time.perf_counter() - t0

            for name in times:  # warm-up, not timed
                for i in range(200):
                    one(name, i)
            per_round = n_requests // rounds
            for r in range(rounds):
                for name in times:
                    times[name].extend(one(name, r * per_round + i) for i in range(per_round))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    out: dict[str, Any] = {name: stats_ms(t) for name, t in times.items()}
    bare_p50 = out["bare_fastapi"]["p50_ms"]
    for name in configs:
        out[name]["added_p50_ms_vs_bare"] = round(out[name]["p50_ms"] - bare_p50, 3)
        out[name]["added_p50_ms_vs_in_process"] = round(out[name]["p50_ms"] - out["in_process"]["p50_ms"], 3)
        out[name]["rps_ratio_vs_bare"] = round(out[name]["requests_per_s"] / out["bare_fastapi"]["requests_per_s"], 3)
        out[name]["p50_ratio_vs_bare"] = round(out[name]["p50_ms"] / bare_p50, 3)
    out["requests_per_variant"] = per_round * rounds
    out["rounds"] = rounds
    return out


def step_costs(folder: Path, audit_dir: Path, n: int = 300, synchronous: str = "normal") -> dict[str, Any]:
    """Milliseconds (p50) of each step of a gateway request, called in-process: where the overhead is."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from aisec.data import load_breast_cancer

    try:
        from aisec.gateway.audit import AuditRow
        from aisec.gateway.auth import PREDICT_ROLES, authorize
        from aisec.gateway.service import Gateway
        from aisec.gateway.settings import load_settings

        data = load_breast_cancer()
        x_test = data.x_test.numpy().astype(np.float64)
        model = LogisticRegression(max_iter=1000, random_state=0).fit(data.x_train.numpy(), data.y_train.numpy())
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, folder / "m.joblib")
        cfg = write_gateway(
            folder, folder / "m.joblib", [30], [-20.0, 20.0], [], None, audit_dir / folder.name, synchronous
        )
        token = make_keys(folder, ["bench"])["bench"]
        gw = Gateway(load_settings(cfg))
        headers = {"authorization": f"Bearer {token}"}
        t: dict[str, list[float]] = {k: [] for k in ("authorize", "admit", "parse", "predict_and_monitors", "audit")}
        for i in range(n):
            body = json.dumps({"inputs": [x_test[i % len(x_test)].tolist()]}).encode()
            t0 = time.perf_counter()
            key = authorize(gw.keys, headers, PREDICT_ROLES)
            t1 = time.perf_counter()
            gw.admit(key)
            t2 = time.perf_counter()
            x, _ = gw.parse(body, False)
            t3 = time.perf_counter()
            gw.predict(key, x)
            t4 = time.perf_counter()
            gw.record(AuditRow(request_id=f"r{i}", endpoint="predict", status=200, decision="answered"), "predict", t4)
            t5 = time.perf_counter()
            for k, a, b in zip(t, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5), strict=True):
                t[k].append(b - a)
        return {k: round(float(np.percentile(v, 50)) * 1e3, 3) for k, v in t.items()}
    except Exception as exc:  # internal names of the gateway may change; the HTTP figures do not need them
        return {"unavailable": f"{type(exc).__name__}: {exc}"}


def monitor_cost(n: int = 2000) -> dict[str, float]:
    """Microseconds per ``observe`` of each monitor alone (in-process, memory store, one-row queries)."""
    from aisec.data import load_breast_cancer
    from aisec.gateway.monitors import build_monitors
    from aisec.gateway.store import MemoryStore

    data = load_breast_cancer()
    ref, x = data.x_train.numpy().astype(np.float64), data.x_test.numpy().astype(np.float64)
    probs = np.array([[0.8, 0.2]])
    out = {}
    for name in ("prada", "probing", "drift", "low-confidence", "latency"):
        (mon,) = build_monitors([{"name": name}], MemoryStore(), ref)
        t: list[float] = []
        for i in range(n):
            t0 = time.perf_counter()
            mon.observe("k", x[i % len(x)][None], probs, 0.002)
            t.append(time.perf_counter() - t0)
        out[name] = {"p50_us": round(float(np.percentile(t, 50)) * 1e6, 1),
                     "p99_us": round(float(np.percentile(t, 99)) * 1e6, 1)}  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ part 2


def prada_bench(tmp: Path, n_clients: int, n_queries: int, attack_seeds: int) -> dict[str, Any]:
    import httpx
    import joblib
    from tests.gateway.monitors.streams import benign_stream, fit_digits_model, jacobian_stream

    from aisec.data import load_digits

    data = load_digits()
    x_train, y_train, x_test = data.x_train.numpy(), data.y_train.numpy(), data.x_test.numpy()
    model = fit_digits_model(x_train, y_train)
    model_file = tmp / "digits.joblib"
    joblib.dump(model, model_file)
    monitors = [{"name": "prada", "action": "label-only"}]
    cfg = write_gateway(tmp / "gwp", model_file, [64], [0.0, 1.0], monitors, None)
    names = [f"benign{c}" for c in range(n_clients)] + [f"attacker{s}" for s in range(attack_seeds)]
    tokens = make_keys(cfg.parent, names)
    proc, url = start("gateway", cfg, cfg.parent)
    try:
        with httpx.Client(timeout=10.0) as client:

            def query(name: str, batch: np.ndarray, log: list[bool]) -> np.ndarray:
                head = {"Authorization": f"Bearer {tokens[name]}"}
                out = np.zeros((len(batch), 10))
                for i, row in enumerate(batch.reshape(len(batch), -1)):
                    r = client.post(url + "/predict", json={"inputs": [row.tolist()]}, headers=head)
                    r.raise_for_status()
                    ans = r.json()
                    log.append("probabilities" not in ans)
                    out[i] = ans["probabilities"][0] if "probabilities" in ans else np.eye(10)[ans["labels"][0]]
                return out

            def fired_after(log: list[bool]) -> int | None:
                # The alert fires while answering query N; query N + 1 is the first label-only answer.
                return log.index(True) if True in log else None

            benign = []
            for c in range(n_clients):
                log: list[bool] = []
                query(f"benign{c}", benign_stream(x_test, n_queries, 100 + c), log)
                benign.append(fired_after(log))
            attacks = []
            for s in range(attack_seeds):
                log = []
                name = f"attacker{s}"
                jacobian_stream(lambda b, name=name, log=log: query(name, b, log), x_test, n_queries, s)
                attacks.append(fired_after(log))
    finally:
        proc.terminate()
        proc.wait(10)
    flagged = [b for b in benign if b is not None]
    caught = [a for a in attacks if a is not None]
    return {
        "model": "logistic regression on 8x8 digits (flattened), behind the gateway, prada action label-only",
        "settings": {"delta": 0.9, "min_queries": 50, "window": 300, "max_set": 200},
        "benign_clients": n_clients,
        "queries_per_client": n_queries,
        "benign_false_positive_rate": len(flagged) / n_clients,
        "benign_flagged_after": flagged,
        "attack": "Jacobian-based augmentation (Papernot et al. 2017), 10 seeds, lambda 0.1, LR substitute",
        "attack_runs": attack_seeds,
        "attack_detection_rate": len(caught) / attack_seeds,
        "attack_fires_after_queries": attacks,
        "attack_fires_after_queries_median": float(np.median(caught)) if caught else None,
    }


def monitor_proofs() -> dict[str, Any]:
    """In-process figures of the other monitors (memory store), and PRADA on uniform random queries."""
    from tests.gateway.monitors.streams import benign_stream, first_alert, fit_digits_model

    from aisec.data import load_breast_cancer, load_digits
    from aisec.gateway.monitors import build_monitors
    from aisec.gateway.store import MemoryStore

    digits, cancer = load_digits(), load_breast_cancer()
    dx_train, dx_test = digits.x_train.numpy(), digits.x_test.numpy()
    model = fit_digits_model(dx_train, digits.y_train.numpy())

    def oracle(q: np.ndarray) -> np.ndarray:
        return model.predict_proba(q.reshape(len(q), -1))

    def mon(config: dict[str, Any], reference: Any = None) -> Any:
        return build_monitors([config], MemoryStore(), reference)[0]

    uniform = [
        first_alert(mon({"name": "prada"}), "u", np.random.default_rng(s).uniform(0, 1, (300, 64)), oracle)
        for s in range(5)
    ]
    probing_benign = [
        first_alert(mon({"name": "probing"}), "b", benign_stream(dx_test, 300, c), oracle) for c in range(20)
    ]
    probes = []
    for s in range(5):
        x0 = dx_test[s].reshape(-1)
        stream = np.clip(x0 + np.random.default_rng(s).uniform(-0.03, 0.03, (100, 64)), 0.0, 1.0)
        probes.append(first_alert(mon({"name": "probing"}), "p", stream, oracle))

    def window_rate(m: Any, pool: np.ndarray, size: int, shift: Any) -> float:
        hits = 0
        for i in range(40):
            rng = np.random.default_rng(1000 + i)
            w = shift(pool[rng.choice(len(pool), size, replace=False)].copy().reshape(size, -1))
            hits += bool(m.test(w)[0])
        return hits / 40

    dm = mon({"name": "drift"}, dx_train)
    cx_train, cx_test = cancer.x_train.numpy().astype(np.float64), cancer.x_test.numpy().astype(np.float64)
    cm = mon({"name": "drift", "window": 100}, cx_train)

    def shift3(w: np.ndarray, by: float) -> np.ndarray:
        w[:, :3] += by
        return w

    return {
        "prada_uniform_random_queries": {
            "runs": 5, "flagged": sum(u is not None for u in uniform),
            "note": "uniform noise gives near-normal nearest-neighbour distances: PRADA does not target it",
        },
        "probing": {
            "benign_clients": 20, "benign_false_positive_rate": sum(b is not None for b in probing_benign) / 20,
            "near_duplicate_probe_fires_after_queries": probes,
        },
        "drift_digits_mmd": {
            "windows": 40, "window": 200, "same_distribution_flag_rate": window_rate(dm, dx_test, 200, lambda w: w),
            "brightness_plus_0.05_flag_rate": window_rate(dm, dx_test, 200, lambda w: np.clip(w + 0.05, 0, 1)),
        },
        "drift_cancer_ks_holm": {
            "windows": 40, "window": 100, "same_distribution_flag_rate": window_rate(cm, cx_test, 100, lambda w: w),
            "three_features_plus_0.3sd_flag_rate": window_rate(cm, cx_test, 100, lambda w: shift3(w, 0.3)),
            "three_features_plus_0.5sd_flag_rate": window_rate(cm, cx_test, 100, lambda w: shift3(w, 0.5)),
        },
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", choices=["gateway", "bare"])
    ap.add_argument("--config", type=Path)
    ap.add_argument("--port", type=int)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--attack-seeds", type=int, default=5)
    ap.add_argument("--thief-budget", type=int, default=500)
    ap.add_argument("--only-policies", action="store_true", help="run part 3 only and update its key")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.config, args.port)
        return
    from policy_extraction import policy_extraction
    from threadpoolctl import threadpool_limits

    started = time.time()
    if args.only_policies:  # part 3 alone, into the existing file
        with tempfile.TemporaryDirectory() as d, threadpool_limits(limits=1):
            res = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
            res["output_policies_vs_extraction"] = policy_extraction(
                Path(d), lambda cfg: start("gateway", cfg, cfg.parent), thief_budget=args.thief_budget
            )
        args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        sys.stdout.write(json.dumps(res["output_policies_vs_extraction"], indent=2) + "\n")
        return
    shm_root = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with (
        tempfile.TemporaryDirectory() as d,
        tempfile.TemporaryDirectory(dir=shm_root) as s,
        threadpool_limits(limits=1),
    ):
        tmp = Path(d)
        latency = latency_bench(tmp, Path(s), args.requests, args.rounds)
        steps = {
            "disk": step_costs(tmp / "steps-disk", tmp),
            "disk_synchronous_full": step_costs(tmp / "steps-disk-full", tmp, synchronous="full"),
            "tmpfs": step_costs(tmp / "steps-tmpfs", Path(s)),
        }
        cost = monitor_cost()
        proofs = monitor_proofs()
        prada = prada_bench(tmp, args.clients, args.queries, args.attack_seeds)
        policies = policy_extraction(tmp, lambda cfg: start("gateway", cfg, cfg.parent), thief_budget=args.thief_budget)
    g = latency["gateway"]
    result = {
        "benchmark": "gateway",
        "command": COMMAND,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "latency": latency,
        "gateway_added_p50_ms": g["added_p50_ms_vs_bare"],
        "gateway_added_p50_under_2ms": g["added_p50_ms_vs_bare"] < 2.0,
        "audit_synchronous": {
            "gateway": "normal (default)",
            "gateway_audit_full": "full",
            "gateway_audit_tmpfs": "normal",
            "gateway_monitors_audit_tmpfs": "normal",
        },
        "store": "memory:// (default) for every gateway variant",
        "gateway_audit_full_added_p50_ms": latency["gateway_audit_full"]["added_p50_ms_vs_bare"],
        "gateway_audit_full_added_p50_under_2ms": latency["gateway_audit_full"]["added_p50_ms_vs_bare"] < 2.0,
        "gateway_audit_tmpfs_added_p50_ms": latency["gateway_audit_tmpfs"]["added_p50_ms_vs_bare"],
        "gateway_monitors_audit_tmpfs_added_p50_ms": latency["gateway_monitors_audit_tmpfs"]["added_p50_ms_vs_bare"],
        "gateway_step_costs_in_process_ms": steps,
        "monitor_observe_cost": cost,
        "prada": prada,
        "monitor_proofs_in_process": proofs,
        "output_policies_vs_extraction": policies,
        "seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
