"""The gateway's FastAPI app: ``create_app(settings)``, served by uvicorn (``aisec serve``).

Every prediction request goes, in this order, through: authentication and role (401/403), the
key's suspension and request-rate limits (403/429), the body size (413), JSON and schema (422),
the input limits (422, naming the rule), the daily query budget (429, cost = batch size), the
model, the output policy, the monitors (whose alerts may switch the key to label-only, throttle
or block it for every replica through the shared store) and the audit log, whose row is committed
before the answer is sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from aisec.core.goals import Modality
from aisec.errors import AisecError, InputValidationError
from aisec.gateway.audit import AuditRow, open_audit
from aisec.gateway.auth import ADMIN_ROLES, ANY_ROLE, AUDIT_ROLES, PREDICT_ROLES, Denied, authorize
from aisec.gateway.inputs import InputChecker, InputRefused
from aisec.gateway.keys import KeyRecord, KeyStore
from aisec.gateway.limits import Limiter
from aisec.gateway.metrics import GatewayMetrics
from aisec.gateway.policy import harden
from aisec.gateway.protocol import InferRequest, PredictRequest, request_body, v2_outputs
from aisec.gateway.settings import ROLES, GatewaySettings, ModelSettings, OutputPolicy
from aisec.gateway.store import BACKEND_ERRORS, Store, open_store
from aisec.targets import Target, load_target

logger = logging.getLogger(__name__)

ACTIONS = ("label-only", "throttle", "block")


class Refused(Exception):
    """A request refused with an HTTP status, a message and the rule it broke."""

    def __init__(self, status: int, decision: str, message: str, rule: str | None = None, retry_after: int = 0):
        super().__init__(message)
        self.status, self.decision, self.message, self.rule, self.retry_after = (
            status,
            decision,
            message,
            rule,
            retry_after,
        )


class KeyCreate(BaseModel):
    role: str = Field(pattern="^(predict|auditor|admin)$")
    name: str = Field("", max_length=200)


class KeyAction(BaseModel):
    action: str = Field(pattern="^(label-only|throttle|block|clear)$")
    ttl_s: float | None = Field(None, gt=0, le=365 * 86400)


def build_target(model: ModelSettings) -> Target:
    """The upstream model a gateway serves (torch, sklearn, onnx file, or a remote http model)."""
    shape = tuple(model.input_shape) if model.input_shape else None
    data = SimpleNamespace(
        input_shape=shape, clip=model.clip, n_classes=model.n_classes, modality=Modality.parse(model.modality)
    )
    return load_target(model, data)  # type: ignore[arg-type]


def _error(status: int, message: str, rule: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if rule is not None:
        body["rule"] = rule
    return JSONResponse(body, status_code=status, headers=headers)


class Gateway:
    """The state behind the app: model, keys, store, limits, monitors, audit log and metrics."""

    def __init__(self, settings: GatewaySettings, *, target: Target | None = None, store: Store | None = None):
        self.settings = settings
        self.target = target if target is not None else build_target(settings.model)
        self.text = self.target.modality is Modality.TEXT
        self.keys = KeyStore(settings.keys_file)
        self.store = store if store is not None else open_store(settings.store_url)
        self.limiter = Limiter(settings.store_url)
        self.audit = open_audit(
            settings.audit.path, retention_days=settings.audit.retention_days, synchronous=settings.audit.synchronous
        )
        self.metrics = GatewayMetrics()
        self.checker = InputChecker(
            settings.inputs, text=self.text, input_shape=self.target.input_shape, clip=self.target.clip
        )
        self.rng = np.random.default_rng()
        self.monitors = self._build_monitors()

    def _build_monitors(self) -> list[Any]:
        if not self.settings.monitors:
            return []
        try:
            from aisec.gateway.monitors.base import build_monitors
        except ImportError:
            logger.warning("monitors are configured but aisec.gateway.monitors is not available; running without")
            return []
        reference = None
        if self.settings.reference_data:
            with np.load(self.settings.reference_data, allow_pickle=False) as npz:
                reference = np.asarray(npz["x"])
        return build_monitors(self.settings.monitors, self.store, reference)

    # -- key state shared by all replicas --------------------------------------------------
    def flag(self, action: str, key_id: str) -> bool:
        return self.store.get(f"gw:action:{action}:{key_id}") is not None

    def set_flag(self, action: str, key_id: str, ttl_s: float | None = None) -> None:
        self.store.set(f"gw:action:{action}:{key_id}", b"1", ttl_s=ttl_s or self.settings.action_ttl_s)

    def clear_flags(self, key_id: str) -> None:
        for action in ACTIONS:
            self.store.delete(f"gw:action:{action}:{key_id}")

    def policy(self, key: KeyRecord) -> OutputPolicy:
        raw = self.store.get(f"gw:policy:{key.id}")
        policy = OutputPolicy.model_validate_json(raw) if raw else self.settings.policy_for(key.id, key.role)
        if self.flag("label-only", key.id):
            policy = OutputPolicy(mode="label")
        return policy

    # -- the steps of a prediction -----------------------------------------------------------
    def admit(self, key: KeyRecord) -> None:
        """Suspension and request-rate limits (before the body is read)."""
        if self.flag("block", key.id):
            raise Refused(403, "blocked", "this key is suspended")
        refusal = self.limiter.check_rate(
            key.id, self.settings.limits_for(key.id), throttled=self.flag("throttle", key.id)
        )
        if refusal is not None:
            raise Refused(429, "rate-limited", "rate limit reached", refusal.rule, refusal.retry_after_s)

    def parse(self, body: bytes, v2: bool) -> tuple[np.ndarray | list[str], str | None]:
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Refused(422, "invalid-input", "the body is not valid JSON", "json") from None
        try:
            if v2:
                req = InferRequest.model_validate(raw)
                x, req_id = self.checker.from_v2(req), req.id
            else:
                x, req_id = self.checker.from_json(PredictRequest.model_validate(raw).inputs), None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            raise Refused(422, "invalid-input", f"{where}: {err['msg']}", "schema") from None
        except InputRefused as exc:
            raise Refused(exc.status, "invalid-input", exc.message, exc.rule) from None
        try:
            self.target.validate_inputs(x if self.text else torch.from_numpy(x))
        except InputValidationError as exc:
            raise Refused(422, "invalid-input", str(exc), "model_input") from None
        return x, req_id

    def predict(self, key: KeyRecord, x: np.ndarray | list[str]) -> tuple[dict[str, Any], list[Any], str, float]:
        n = len(x)
        refusal = self.limiter.charge(key.id, self.settings.limits_for(key.id), n)
        if refusal is not None:
            raise Refused(429, "budget-exhausted", "query budget exhausted", refusal.rule, refusal.retry_after_s)
        started = time.perf_counter()
        try:
            inputs = self.target.validate_inputs(x if self.text else torch.from_numpy(x))
            with torch.no_grad():
                probs = self.target._predict_proba(inputs).detach().cpu().numpy().astype(np.float64)
        except AisecError as exc:
            logger.warning("upstream model failed: %s", exc)
            raise Refused(502, "upstream-error", "the model could not answer") from None
        latency = time.perf_counter() - started
        policy = self.policy(key)
        answer = harden(probs, policy, self.rng)
        alerts = self.observe(key, x, probs, latency)
        self.metrics.queries.labels(key.role).inc(n)
        usage = self.limiter.used(key.id, self.settings.limits_for(key.id))
        if usage is not None:
            self.metrics.budget_fraction.observe(min(1.0, usage[0] / usage[1]))
        return answer, alerts, policy.mode, latency

    def observe(self, key: KeyRecord, x: np.ndarray | list[str], probs: np.ndarray, latency: float) -> list[Any]:
        alerts: list[Any] = []
        for monitor in self.monitors:
            try:
                alerts.extend(monitor.observe(key.id, x, probs, latency))
            except Exception:  # a broken monitor must not take the gateway down
                logger.exception("monitor %s failed", getattr(monitor, "name", monitor))
        for alert in alerts:
            action = self.settings.alert_actions.get(alert.monitor, alert.action)
            self.metrics.alerts.labels(alert.monitor, action).inc()
            logger.warning("alert %s on key %s (score %.3g): %s -> %s", alert.monitor, key.id, alert.score,
                           alert.message, action)  # fmt: skip
            if action in ACTIONS:
                self.set_flag(action, key.id)
        return alerts

    def record(self, row: AuditRow, endpoint: str, started: float) -> None:
        self.audit.write(row)
        self.metrics.requests.labels(endpoint, str(row.status), row.decision).inc()
        self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, "invalid-input", f"the body is larger than {limit} bytes", "max_body_bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, "invalid-input", f"the body is larger than {limit} bytes", "max_body_bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: GatewaySettings, *, target: Target | None = None, store: Store | None = None) -> FastAPI:
    """The gateway app; ``target`` and ``store`` replace the ones the settings describe (tests)."""
    gw = Gateway(settings, target=target, store=store)
    model_name = settings.model.name
    app = FastAPI(
        title="aisec gateway",
        version="1",
        description="A hardened model server: Open Inference Protocol (KServe v2) and /predict, "
        "with API keys, rate limits, input limits, output policies, monitors and an audit log.",
    )
    app.state.gateway = gw

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in err["loc"]) or "request"
        return _error(422, f"{where}: {err['msg']}", "schema")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return _error(500, "internal error")

    async def serve(request: Request, endpoint: str, v2: bool) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        row = AuditRow(request_id=request_id, endpoint=endpoint, status=200, decision="answered")
        headers = {"X-Request-ID": request_id}
        try:
            try:
                key = await run_in_threadpool(authorize, gw.keys, request.headers, PREDICT_ROLES)
            except Denied as exc:
                row.key_id = exc.key_id
                raise Refused(
                    exc.status, "unauthenticated" if exc.status == 401 else "forbidden", exc.message
                ) from None
            row.key_id, row.role = key.id, key.role
            await run_in_threadpool(gw.admit, key)
            body = await _read_body(request, settings.inputs.max_body_bytes)
            row.input_hash = hashlib.sha256(body).hexdigest()
            x, req_id = await run_in_threadpool(gw.parse, body, v2)
            row.n_inputs = len(x)
            answer, alerts, mode, latency = await run_in_threadpool(gw.predict, key, x)
        except Refused as exc:
            row.status, row.decision = exc.status, exc.decision
            if exc.retry_after:
                headers["Retry-After"] = str(exc.retry_after)
            await run_in_threadpool(gw.record, row, endpoint, started)
            return _error(exc.status, exc.message, exc.rule, headers)
        except BACKEND_ERRORS:
            logger.exception("the shared store or limit backend failed")
            return _error(503, "service unavailable", headers={**headers, "Retry-After": "1"})
        row.output_class, row.policy, row.latency_ms = answer["labels"], mode, latency * 1000.0
        if alerts:
            scores: dict[str, float] = {}
            for a in alerts:
                scores[a.monitor] = max(scores.get(a.monitor, float("-inf")), float(a.score))
            row.monitor_scores = scores
            row.alerts = [f"{a.monitor}:{settings.alert_actions.get(a.monitor, a.action)}" for a in alerts]
        await run_in_threadpool(gw.record, row, endpoint, started)  # durable before the answer leaves
        if v2:
            out = {"model_name": model_name, "id": req_id or request_id, "outputs": v2_outputs(answer, row.n_inputs)}
            return JSONResponse(out, headers=headers)
        return JSONResponse(answer, headers=headers)

    api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="or Authorization: Bearer <key>")

    def require(roles: frozenset[str]) -> Any:
        async def check(request: Request, _key: str | None = Security(api_key)) -> KeyRecord:
            return await run_in_threadpool(authorize, gw.keys, request.headers, roles)

        return Depends(check)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> JSONResponse:
        return _error(exc.status, exc.message)

    # -- Open Inference Protocol -------------------------------------------------------------
    @app.get("/v2/health/live", tags=["health"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["health"])
    async def ready() -> Response:
        ok = await run_in_threadpool(_ready, gw)
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "aisec-gateway", "version": "1", "extensions": []}

    @app.get("/v2/models/{name}", tags=["v2"])
    async def model_metadata(name: str, _k: KeyRecord = require(ANY_ROLE)) -> Response:
        if name != model_name:
            return _error(404, "unknown model")
        t = gw.target
        shape = [-1] if gw.text else [-1, *(t.input_shape or ())]
        return JSONResponse(
            {
                "name": model_name,
                "platform": f"aisec-{t.kind}",
                "inputs": [{"name": "input", "datatype": "BYTES" if gw.text else "FP32", "shape": shape}],
                "outputs": [
                    {"name": "probabilities", "datatype": "FP32", "shape": [-1, t.n_classes]},
                    {"name": "label", "datatype": "INT64", "shape": [-1]},
                ],
            }
        )

    @app.get("/v2/models/{name}/ready", tags=["v2"])
    async def model_ready(name: str) -> Response:
        if name != model_name:
            return _error(404, "unknown model")
        return JSONResponse({"name": name, "ready": True})

    @app.post("/v2/models/{name}/infer", tags=["v2"], openapi_extra=request_body(InferRequest))
    async def infer(name: str, request: Request) -> Response:
        if name != model_name:
            await run_in_threadpool(authorize, gw.keys, request.headers, PREDICT_ROLES)
            return _error(404, "unknown model")
        return await serve(request, "infer", v2=True)

    @app.post("/predict", tags=["predict"], openapi_extra=request_body(PredictRequest))
    async def predict(request: Request) -> Response:
        return await serve(request, "predict", v2=False)

    # -- auditor -----------------------------------------------------------------------------
    @app.get("/metrics", tags=["audit"])
    async def metrics(_k: KeyRecord = require(AUDIT_ROLES)) -> Response:
        return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/audit", tags=["audit"])
    async def audit(
        key_id: str | None = None,
        since: float | None = None,
        status: int | None = None,
        decision: str | None = None,
        limit: int = 100,
        _k: KeyRecord = require(AUDIT_ROLES),
    ) -> Response:
        rows = await run_in_threadpool(
            gw.audit.query, key_id=key_id, since=since, status=status, decision=decision, limit=limit
        )
        return JSONResponse({"rows": rows})

    # -- admin -------------------------------------------------------------------------------
    @app.get("/admin/keys", tags=["admin"])
    async def list_keys(_k: KeyRecord = require(ADMIN_ROLES)) -> Response:
        return JSONResponse({"keys": [r.public() for r in gw.keys.list()]})

    @app.post("/admin/keys", tags=["admin"])
    async def create_key(body: KeyCreate, _k: KeyRecord = require(ADMIN_ROLES)) -> Response:
        token, record = await run_in_threadpool(gw.keys.create, body.role, body.name)
        return JSONResponse({"key": token, **record.public()}, status_code=201)

    @app.delete("/admin/keys/{key_id}", tags=["admin"])
    async def revoke_key(key_id: str, _k: KeyRecord = require(ADMIN_ROLES)) -> Response:
        if key_id not in {r.id for r in gw.keys.list()}:
            return _error(404, "unknown key")
        record = await run_in_threadpool(gw.keys.revoke, key_id)
        return JSONResponse(record.public())

    @app.put("/admin/keys/{key_id}/policy", tags=["admin"])
    async def set_policy(key_id: str, body: OutputPolicy, _k: KeyRecord = require(ADMIN_ROLES)) -> Response:
        await run_in_threadpool(gw.store.set, f"gw:policy:{key_id}", body.model_dump_json().encode())
        return JSONResponse({"key_id": key_id, "policy": body.model_dump()})

    @app.put("/admin/keys/{key_id}/action", tags=["admin"])
    async def set_action(key_id: str, body: KeyAction, _k: KeyRecord = require(ADMIN_ROLES)) -> Response:
        if body.action == "clear":
            await run_in_threadpool(gw.clear_flags, key_id)
        else:
            await run_in_threadpool(gw.set_flag, body.action, key_id, body.ttl_s)
        return JSONResponse({"key_id": key_id, "action": body.action})

    return app


def _ready(gw: Gateway) -> bool:
    try:
        gw.store.get("gw:ready-probe")
    except Exception:  # the shared store is down: not ready
        return False
    ready = getattr(gw.target, "ready", None)
    return bool(ready()) if callable(ready) else True


__all__ = ["ROLES", "Gateway", "build_target", "create_app"]
