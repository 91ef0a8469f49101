"""The gateway's FastAPI app: ``create_app(settings)``, served by uvicorn (``aisec serve``).

Every prediction request goes, in this order, through: authentication and role (401/403), the
key's suspension and request-rate limits (403/429), the body size (413), JSON and schema (422),
the input limits (422, naming the rule), the daily query budget (429, cost = batch size), the
model, the output policy, the monitors (whose alerts may switch the key to label-only, throttle
or block it for every replica through the shared store) and the audit log, whose row is committed
before the answer is sent. The routes live here; the state and the steps they call are
``aisec.gateway.service.Gateway``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from aisec.gateway.audit import AuditRow
from aisec.gateway.auth import ADMIN_ROLES, ANY_ROLE, AUDIT_ROLES, PREDICT_ROLES, Denied, authorize
from aisec.gateway.keys import KeyRecord
from aisec.gateway.protocol import InferRequest, PredictRequest, request_body, v2_outputs
from aisec.gateway.service import Gateway, Refused, build_target, is_ready
from aisec.gateway.settings import ROLES, GatewaySettings, OutputPolicy
from aisec.gateway.store import BACKEND_ERRORS, Store
from aisec.targets import Target

logger = logging.getLogger(__name__)


class KeyCreate(BaseModel):
    role: str = Field(pattern="^(predict|auditor|admin)$")
    name: str = Field("", max_length=200)


class KeyAction(BaseModel):
    action: str = Field(pattern="^(label-only|throttle|block|clear)$")
    ttl_s: float | None = Field(None, gt=0, le=365 * 86400)


def _error(status: int, message: str, rule: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if rule is not None:
        body["rule"] = rule
    return JSONResponse(body, status_code=status, headers=headers)


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
        ok = await run_in_threadpool(is_ready, gw)
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


__all__ = ["ROLES", "Gateway", "build_target", "create_app"]
