"""HTTP targets: a model behind a remote prediction API.

Two wire formats are spoken:

``v2``
    The Open Inference Protocol (KServe v2, also served by Triton, Seldon MLServer, TorchServe):
    ``POST {url}/v2/models/{model_name}/infer`` with
    ``{"inputs": [{"name": "input-0", "shape": [N, ...], "datatype": "FP32", "data": [...]}]}``
    (text: ``"datatype": "BYTES"``, ``"shape": [N]``, a list of strings). The answer's
    ``outputs`` hold either probabilities (shape ``[N, C]``, a float datatype) or labels
    (shape ``[N]`` or ``[N, 1]``).
``json``
    Plain JSON: ``POST {url}`` (the full endpoint) with ``{"inputs": [...]}`` (nested lists or
    strings), answered by ``{"probabilities": [[...], ...]}`` or ``{"labels": [...]}``.

Labels are class indices ``0..n_classes-1``. A server that answers labels only gives an attacker
no probabilities: the target then lacks :attr:`~aisec.core.goals.Capability.PROBABILITIES`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
import numpy as np
import torch

from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Modality
from aisec.errors import ConfigError, InputValidationError, TargetUnavailableError, UnsupportedTargetError
from aisec.targets.base import Inputs, Target

logger = logging.getLogger(__name__)

#: Longest wait a ``Retry-After`` header may impose, in seconds.
MAX_RETRY_AFTER = 10.0
_FLOAT_TYPES = {"FP16", "FP32", "FP64", "BF16"}
_EXCERPT = 200


def _excerpt(text: str) -> str:
    """The first characters of a body, on one line."""
    flat = " ".join(text.split())
    return flat[:_EXCERPT] + ("..." if len(flat) > _EXCERPT else "")


class HttpTarget(Target):
    """A classifier behind an HTTP prediction API (Open Inference Protocol v2 or plain JSON).

    Queries are sent in requests of at most ``batch_size`` inputs over one reused connection
    pool; answers are concatenated. A request answered with 429 or a 5xx status, or that fails
    to connect or times out, is retried up to ``retries`` times with exponential backoff
    (``backoff * 2**attempt`` seconds, or the server's ``Retry-After`` in seconds, at most
    :data:`MAX_RETRY_AFTER`). Whatever still fails raises
    :class:`~aisec.errors.TargetUnavailableError` with a one-line reason naming the URL (shown
    without credentials or query string, as in :meth:`describe`).

    The query budget is charged by the :class:`~aisec.targets.base.TargetView`, not here;
    :attr:`requests_sent` counts HTTP requests (retries included).

    Parameters
    ----------
    url:
        ``v2``: the server's base URL (``http://host:8080``); ``json``: the full endpoint.
    protocol:
        ``"v2"`` (Open Inference Protocol) or ``"json"`` (plain JSON).
    model_name:
        Model name in the v2 path; required for ``v2``.
    modality:
        ``"image"``, ``"tabular"`` or ``"text"`` (text is sent as strings).
    n_classes:
        Number of classes the model predicts.
    input_shape:
        Shape of one numeric input; checked before anything is sent.
    clip:
        Valid input range.
    timeout:
        Seconds per request (connect, read, write).
    retries:
        Extra attempts after a failed request.
    batch_size:
        Most inputs per request.
    headers:
        Extra request headers, e.g. ``{"Authorization": "Bearer ..."}``; never logged or reported.
    name:
        Name in reports.
    backoff:
        First retry delay in seconds; doubled at each further attempt.
    returns:
        What the server answers: ``"probabilities"``, ``"labels"``, or ``None`` to find out from
        the first answer. A server found to answer labels only loses the ``probabilities``
        capability from then on; declare ``"labels"`` to have a view refuse probability queries
        before any query is spent.
    input_name:
        Name of the v2 input tensor.
    """

    kind: ClassVar[str] = "http"

    def __init__(
        self,
        url: str,
        *,
        protocol: Literal["v2", "json"] = "v2",
        model_name: str | None = None,
        modality: Modality | str,
        n_classes: int,
        input_shape: Sequence[int] | None = None,
        clip: tuple[float, float] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        batch_size: int = 256,
        headers: Mapping[str, str] | None = None,
        name: str = "http-model",
        backoff: float = 0.2,
        returns: Literal["probabilities", "labels"] | None = None,
        input_name: str = "input-0",
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"target.url: expected an http:// or https:// URL, got {url!r}")
        check_choice("target.protocol", protocol, ("v2", "json"))
        if protocol == "v2" and not model_name:
            raise ConfigError("target.model_name: the v2 protocol needs the model's name")
        check_choice("returns", returns, ("probabilities", "labels", None))
        if not timeout > 0:
            raise InputValidationError("timeout", "a number of seconds > 0", timeout)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InputValidationError("retries", "an integer >= 0", retries)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputValidationError("batch_size", "an integer >= 1", batch_size)
        if not backoff >= 0:
            raise InputValidationError("backoff", "a number of seconds >= 0", backoff)
        super().__init__(
            modality=modality, n_classes=n_classes, input_shape=input_shape, clip=clip, device="cpu", name=name
        )
        self.url = url.rstrip("/")
        self.protocol = protocol
        self.model_name = model_name
        self.timeout = float(timeout)
        self.retries = retries
        self.batch_size = batch_size
        self.backoff = float(backoff)
        self.input_name = input_name
        self.endpoint = (
            f"{self.url}/v2/models/{quote(str(model_name), safe='')}/infer" if protocol == "v2" else self.url
        )
        #: The endpoint as error messages and reports show it: without credentials or query string.
        self.shown_url = str(httpx.URL(self.endpoint).copy_with(query=None, userinfo=b""))
        self._returns = returns
        self._client = httpx.Client(timeout=self.timeout, headers=dict(headers or {}))
        self._lock = threading.Lock()
        self.requests_sent = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection pool; the target cannot be queried afterwards."""
        self._client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what it can provide --------------------------------------------------------------------
    @property
    def returns(self) -> str | None:
        """``"probabilities"``, ``"labels"``, or ``None`` while no answer has been seen."""
        return self._returns

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self._returns == "labels":
            return frozenset({Capability.LABELS})
        return frozenset({Capability.LABELS, Capability.PROBABILITIES})

    def ready(self) -> bool:
        """Whether the server answers (v2: ``GET /v2/health/ready`` is 200); no retries, no queries."""
        try:
            if self.protocol == "v2":
                return self._client.get(f"{self.url}/v2/health/ready").status_code == 200
            return self._client.get(self.url).status_code < 500  # json: any answer means a server is there
        except httpx.HTTPError:
            return False

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "url": str(httpx.URL(self.url).copy_with(query=None, userinfo=b"")),
            "protocol": self.protocol,
            "model_name": self.model_name,
        }

    # -- queries ----------------------------------------------------------------------------------
    def _predict_proba(self, x: Inputs) -> torch.Tensor:
        if self._returns == "labels":
            raise UnsupportedTargetError(f"{self.shown_url} answers labels only", [Capability.PROBABILITIES])
        chunks = []
        for batch in self._batches(x):
            kind, values = self._ask(batch)
            if kind == "labels":
                raise UnsupportedTargetError(f"{self.shown_url} answers labels only", [Capability.PROBABILITIES])
            chunks.append(values)
        return torch.cat(chunks)

    def _predict_labels(self, x: Inputs) -> torch.Tensor:
        chunks = []
        for batch in self._batches(x):
            kind, values = self._ask(batch)
            chunks.append(values if kind == "labels" else values.argmax(dim=1))
        return torch.cat(chunks)

    def _batches(self, x: Inputs) -> list[Inputs]:
        return [x[i : i + self.batch_size] for i in range(0, len(x), self.batch_size)]

    def _ask(self, batch: Inputs) -> tuple[str, torch.Tensor]:
        """Send one batch; ``("probabilities", (N, C) float32)`` or ``("labels", (N,) int64)``."""
        body = self._post(self._encode(batch))
        kind, values = self._decode(body, len(batch))
        if self._returns is None:
            self._returns = kind
            logger.debug("%s answers %s", self.shown_url, kind)
        return kind, values

    # -- the wire ------------------------------------------------------------------------------------
    def _encode(self, batch: Inputs) -> dict[str, Any]:
        if self.modality is Modality.TEXT:
            texts = list(batch)
            if self.protocol == "json":
                return {"inputs": texts}
            return {"inputs": [{"name": self.input_name, "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
        assert isinstance(batch, torch.Tensor)
        arr = batch.detach().cpu().to(torch.float32)
        if self.protocol == "json":
            return {"inputs": arr.tolist()}
        return {
            "inputs": [
                {
                    "name": self.input_name,
                    "shape": list(arr.shape),
                    "datatype": "FP32",
                    "data": arr.reshape(-1).tolist(),
                }
            ]
        }

    def _post(self, payload: dict[str, Any]) -> Any:
        """POST with retries; the decoded JSON body of a 2xx answer."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            with self._lock:
                self.requests_sent += 1
            try:
                resp = self._client.post(self.endpoint, json=payload)
            except httpx.TimeoutException as exc:
                if last:
                    raise TargetUnavailableError(
                        f"{self.shown_url} did not answer within {self.timeout:g} s "
                        f"({type(exc).__name__}) after {attempts} attempt(s)"
                    ) from None
                self._wait(attempt, None, type(exc).__name__)
                continue
            except httpx.TransportError as exc:
                if last:
                    raise TargetUnavailableError(
                        f"could not reach {self.shown_url}: {type(exc).__name__}: {_excerpt(str(exc)) or 'no detail'} "
                        f"after {attempts} attempt(s)"
                    ) from None
                self._wait(attempt, None, type(exc).__name__)
                continue
            status = resp.status_code
            if status == 429 or status >= 500:
                if last:
                    raise TargetUnavailableError(
                        f"{self.shown_url} answered HTTP {status} after {attempts} attempt(s): {_excerpt(resp.text)}"
                    )
                self._wait(attempt, resp.headers.get("retry-after"), f"HTTP {status}")
                continue
            if status >= 400:
                raise TargetUnavailableError(f"{self.shown_url} answered HTTP {status}: {_excerpt(resp.text)}")
            try:
                return resp.json()
            except ValueError:
                raise TargetUnavailableError(
                    f"{self.shown_url} answered HTTP {status} with a body that is not JSON: {_excerpt(resp.text)}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: str | None, reason: str) -> None:
        """Sleep before the next attempt: ``Retry-After`` seconds when given, else exponential backoff."""
        delay = self.backoff * 2**attempt
        if retry_after is not None and retry_after.strip().replace(".", "", 1).isdigit():
            delay = float(retry_after)  # an HTTP date is ignored: the backoff stays
        delay = min(delay, MAX_RETRY_AFTER)
        logger.info("%s: %s, retry %d/%d in %.2f s", self.shown_url, reason, attempt + 1, self.retries, delay)
        if delay > 0:
            time.sleep(delay)

    def _decode(self, body: Any, n: int) -> tuple[str, torch.Tensor]:
        if self.protocol == "v2":
            return self._decode_v2(body, n)
        if not isinstance(body, dict):
            raise self._malformed(f"expected a JSON object, got {type(body).__name__}")
        if isinstance(body.get("top_k"), dict) and "probabilities" not in body:
            top = body["top_k"]
            return "probabilities", self._top_k(top.get("classes"), top.get("scores"), n)
        if "probabilities" in body:
            return "probabilities", self._probabilities(body["probabilities"], n)
        if "labels" in body:
            return "labels", self._labels(body["labels"], n)
        raise self._malformed(f"no 'probabilities' or 'labels' key (keys: {', '.join(map(str, body)) or 'none'})")

    def _decode_v2(self, body: Any, n: int) -> tuple[str, torch.Tensor]:
        outputs = body.get("outputs") if isinstance(body, dict) else None
        if not isinstance(outputs, list) or not outputs:
            raise self._malformed("no 'outputs' list in the v2 answer")
        named = {o.get("name"): o for o in outputs if isinstance(o, dict)}
        if "top_k_classes" in named and "top_k_scores" in named:  # a top-k API (the aisec gateway's shape)
            return "probabilities", self._top_k(
                named["top_k_classes"].get("data"), named["top_k_scores"].get("data"), n
            )
        labels: tuple[str, torch.Tensor] | None = None
        for i, out in enumerate(outputs):
            if not isinstance(out, dict) or "data" not in out or not isinstance(out.get("shape"), list):
                raise self._malformed(f"outputs[{i}] lacks 'shape' or 'data'")
            shape = out["shape"]
            dtype = str(out.get("datatype", "FP32")).upper()
            try:
                data = np.asarray(out["data"], dtype=np.float64).reshape(-1)
                values = data.reshape([int(d) for d in shape])
            except (TypeError, ValueError):
                raise self._malformed(f"outputs[{i}]: data is not {dtype} numbers of shape {shape}") from None
            if dtype in _FLOAT_TYPES and values.ndim == 2 and values.shape[1] > 1:
                return "probabilities", self._probabilities(values, n)
            if labels is None and (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
                labels = ("labels", self._labels(values.reshape(-1), n))
        if labels is None:
            shapes = ", ".join(str(o.get("shape")) for o in outputs)
            raise self._malformed(f"no output of shape [{n}, {self.n_classes}] or [{n}] (got {shapes})")
        return labels

    def _probabilities(self, data: Any, n: int) -> torch.Tensor:
        try:
            probs = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise self._malformed("probabilities are not a table of numbers") from None
        if probs.shape != (n, self.n_classes):
            raise self._malformed(f"probabilities of shape {list(probs.shape)}, expected [{n}, {self.n_classes}]")
        if not np.isfinite(probs).all():
            raise self._malformed("probabilities hold NaN or inf")
        sums = probs.sum(axis=1)
        # rounded or truncated answers (a hardened API) need not sum to 1: renormalise rows of scores in [0, 1];
        # anything else (negative, above 1, an all-zero row, sums far from 1) is not probabilities
        if n and (probs.min() < -1e-6 or probs.max() > 1 + 1e-6 or sums.min() <= 0 or np.abs(sums - 1).max() > 0.5):
            raise self._malformed(
                f"scores are not probabilities (values in [{probs.min():.4g}, {probs.max():.4g}], "
                f"row sums in [{sums.min():.4g}, {sums.max():.4g}])"
            )
        return torch.from_numpy(probs.clip(0.0, 1.0) / sums[:, None])

    def _top_k(self, classes: Any, scores: Any, n: int) -> torch.Tensor:
        """Top-k classes and their scores, spread into rows of ``n_classes`` with zeros elsewhere."""
        try:
            cls = np.asarray(classes, dtype=np.float64).reshape(n, -1)
            val = np.asarray(scores, dtype=np.float64).reshape(n, -1)
        except (TypeError, ValueError):
            raise self._malformed("top-k classes and scores are not two tables of the same shape") from None
        if cls.shape != val.shape or (
            n and (cls.min() < 0 or cls.max() >= self.n_classes or (cls != np.round(cls)).any())
        ):
            raise self._malformed(f"top-k classes are not class indices 0..{self.n_classes - 1}")
        rows = np.zeros((n, self.n_classes))
        np.put_along_axis(rows, cls.astype(np.int64), val, axis=1)
        return torch.from_numpy(rows)

    def _labels(self, data: Any, n: int) -> torch.Tensor:
        try:
            raw = np.asarray(data, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise self._malformed("labels are not a list of class indices") from None
        if raw.shape != (n,):
            raise self._malformed(f"{raw.size} labels for {n} inputs")
        if n and (
            not np.isfinite(raw).all() or (raw != np.round(raw)).any() or raw.min() < 0 or raw.max() >= self.n_classes
        ):
            raise self._malformed(f"labels are not class indices 0..{self.n_classes - 1}")
        return torch.from_numpy(raw.astype(np.int64))

    def _malformed(self, what: str) -> TargetUnavailableError:
        return TargetUnavailableError(f"{self.shown_url} answered malformed predictions: {what}")
