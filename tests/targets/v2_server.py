"""A real model server for the HTTP target tests: FastAPI + uvicorn on a loopback port.

Serves a scikit-learn LogisticRegression on breast cancer (30 standardized features) and a
TF-IDF + LogisticRegression spam filter on a handful of inline texts, in the shapes real servers
use:

- ``POST /v2/models/{cancer|spam|cancer-labels}/infer``: Open Inference Protocol v2
  (``cancer-labels`` answers INT64 labels only); any model in ``State.served`` (FP32 probabilities,
  as a torch server answers) and its ``-labels`` twin
- ``GET /v2/health/ready``
- ``POST /predict`` (plain JSON, probabilities) and ``POST /labels`` (plain JSON, labels only)
- ``POST /flaky/v2/models/cancer/infer``: answers ``State.flaky_status`` for the next
  ``State.flaky_failures`` requests (429 with ``Retry-After: 0``, or 503), then succeeds
- ``POST /slow`` (sleeps), ``POST /garbage`` (200 without predictions), ``POST /not-json``
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from aisec.data import load_breast_cancer

TEXTS = [
    "WINNER! claim your free prize now, call 09061701461",
    "free entry in a weekly competition to win cash, text WIN",
    "urgent: your mobile number has won a 2000 pound award, call now",
    "congratulations you won a free holiday, reply YES to claim",
    "cash prize waiting for you, text CLAIM to 80082",
    "are we still meeting for lunch tomorrow?",
    "I'll be home late tonight, save me some dinner",
    "can you pick up milk on the way back",
    "thanks for yesterday, it was great to see you",
    "ok see you at the station at six",
]
TEXT_LABELS = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


@dataclass
class State:
    """The served models and what the server saw, shared with the tests (same process)."""

    cancer: LogisticRegression
    spam: Pipeline
    hits: Counter[str] = field(default_factory=Counter)  # requests per route
    inputs: Counter[str] = field(default_factory=Counter)  # inputs received per route
    flaky_failures: int = 0
    flaky_status: int = 503
    #: more models by name: float64 inputs of the request's shape -> (N, C) probabilities
    served: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)


def fit_models() -> tuple[LogisticRegression, Pipeline]:
    data = load_breast_cancer(seed=0)
    cancer = LogisticRegression(max_iter=1000).fit(data.x_train.numpy().astype(np.float64), data.y_train.numpy())
    spam = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, TEXT_LABELS)
    return cancer, spam


def _v2_tensor(body: dict[str, Any]) -> dict[str, Any]:
    return body["inputs"][0]


def create_app(state: State) -> FastAPI:
    app = FastAPI()

    def v2_answer(model: str, body: dict[str, Any]) -> JSONResponse:
        tensor = _v2_tensor(body)
        n = int(tensor["shape"][0])
        if model == "spam":
            if tensor["datatype"] != "BYTES":
                return JSONResponse({"error": "spam expects BYTES"}, status_code=400)
            probs = state.spam.predict_proba(list(tensor["data"]))
        else:
            x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
            name = model.removesuffix("-labels")
            if name in state.served:
                probs = np.asarray(state.served[name](x), dtype=np.float32)
                if model != name:
                    out = {"name": "label", "shape": [n], "datatype": "INT64", "data": probs.argmax(1).tolist()}
                    return JSONResponse({"model_name": model, "outputs": [out]})
                data = probs.ravel().tolist()
                out = {"name": "probabilities", "shape": list(probs.shape), "datatype": "FP32", "data": data}
                return JSONResponse({"model_name": model, "outputs": [out]})
            if model == "cancer-labels":
                labels = state.cancer.predict(x.reshape(n, -1)).astype(int)
                out = {"name": "label", "shape": [n], "datatype": "INT64", "data": labels.tolist()}
                return JSONResponse({"model_name": model, "outputs": [out]})
            probs = state.cancer.predict_proba(x.reshape(n, -1))
        out = {"name": "probabilities", "shape": list(probs.shape), "datatype": "FP64", "data": probs.ravel().tolist()}
        label = {"name": "label", "shape": [n], "datatype": "INT64", "data": probs.argmax(1).tolist()}
        return JSONResponse({"model_name": model, "outputs": [label, out]})

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{model}/infer")
    async def infer(model: str, request: Request) -> JSONResponse:
        body = await request.json()
        state.hits[model] += 1
        if model not in ("cancer", "spam", "cancer-labels") and model.removesuffix("-labels") not in state.served:
            return JSONResponse({"error": f"model {model} not found"}, status_code=404)
        state.inputs[model] += int(_v2_tensor(body)["shape"][0])
        return v2_answer(model, body)

    @app.post("/flaky/v2/models/{model}/infer")
    async def flaky(model: str, request: Request) -> JSONResponse:
        body = await request.json()
        state.hits["flaky"] += 1
        if state.flaky_failures > 0:
            state.flaky_failures -= 1
            headers = {"Retry-After": "0"} if state.flaky_status == 429 else {}
            return JSONResponse({"error": "try again"}, status_code=state.flaky_status, headers=headers)
        state.inputs["flaky"] += int(_v2_tensor(body)["shape"][0])
        return v2_answer(model, body)

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        x = np.asarray((await request.json())["inputs"], dtype=np.float64)
        state.hits["predict"] += 1
        state.inputs["predict"] += len(x)
        return {"probabilities": state.cancer.predict_proba(x.reshape(len(x), -1)).tolist()}

    @app.post("/labels")
    async def labels(request: Request) -> dict[str, Any]:
        x = np.asarray((await request.json())["inputs"], dtype=np.float64)
        state.hits["labels"] += 1
        state.inputs["labels"] += len(x)
        return {"labels": state.cancer.predict(x.reshape(len(x), -1)).astype(int).tolist()}

    @app.post("/slow")
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(1.0)
        return {"labels": []}

    @app.post("/garbage")
    async def garbage() -> dict[str, Any]:
        return {"result": "fine"}

    @app.post("/not-json")
    async def not_json() -> PlainTextResponse:
        return PlainTextResponse("<html>gateway page</html>")

    return app


def free_port() -> int:
    """A loopback port nothing listens on (the socket is closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn in a daemon thread on an already-bound loopback socket; ``stop()`` shuts it down."""

    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


@contextmanager
def serving(state: State | None = None) -> Iterator[tuple[ServerThread, State]]:
    """A started server of ``state`` (default: :func:`fit_models`' cancer and spam models), stopped on exit."""
    if state is None:
        cancer, spam = fit_models()
        state = State(cancer=cancer, spam=spam)
    srv = ServerThread(create_app(state)).start()
    try:
        yield srv, state
    finally:
        srv.stop()
