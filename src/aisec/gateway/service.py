"""The state behind the gateway app and the steps of a prediction, without the HTTP routes.

:class:`Gateway` holds the model, keys, shared store, limits, monitors, audit log and metrics, and
runs each step a prediction request goes through (:meth:`~Gateway.admit`, :meth:`~Gateway.parse`,
:meth:`~Gateway.predict`, :meth:`~Gateway.record`); a step that refuses raises :class:`Refused` with
the HTTP status and the rule, which ``aisec.gateway.app`` turns into the JSON answer and the audit row.
"""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from aisec.core.goals import Modality
from aisec.errors import AisecError, InputValidationError
from aisec.gateway.audit import AuditRow, open_audit
from aisec.gateway.inputs import InputChecker, InputRefused
from aisec.gateway.keys import KeyRecord, KeyStore
from aisec.gateway.limits import Limiter
from aisec.gateway.metrics import GatewayMetrics
from aisec.gateway.policy import harden
from aisec.gateway.protocol import InferRequest, PredictRequest
from aisec.gateway.settings import GatewaySettings, ModelSettings, OutputPolicy
from aisec.gateway.store import Store, open_store
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


def build_target(model: ModelSettings) -> Target:
    """The upstream model a gateway serves (torch, sklearn, onnx file, or a remote http model)."""
    shape = tuple(model.input_shape) if model.input_shape else None
    data = SimpleNamespace(
        input_shape=shape, clip=model.clip, n_classes=model.n_classes, modality=Modality.parse(model.modality)
    )
    return load_target(model, data)  # type: ignore[arg-type]


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


def is_ready(gw: Gateway) -> bool:
    """Whether the shared store answers and the upstream model says it is ready (``/v2/health/ready``)."""
    try:
        gw.store.get("gw:ready-probe")
    except Exception:  # the shared store is down: not ready
        return False
    ready = getattr(gw.target, "ready", None)
    return bool(ready()) if callable(ready) else True


__all__ = ["ACTIONS", "Gateway", "Refused", "build_target", "is_ready"]
