"""Prometheus metrics of one gateway process (``GET /metrics``, auditor or admin role).

Labels are bounded: endpoint, status, decision, monitor, action, role; never a key id, so the
number of series does not grow with the number of keys.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class GatewayMetrics:
    """The gateway's counters and histograms, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "aisec_gateway_requests",
            "Requests by endpoint, HTTP status and decision.",
            ["endpoint", "status", "decision"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "aisec_gateway_latency_seconds",
            "Time from request to answer.",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.alerts = Counter(
            "aisec_gateway_alerts",
            "Monitor alerts by monitor and action.",
            ["monitor", "action"],
            registry=self.registry,
        )
        self.queries = Counter(
            "aisec_gateway_queries", "Inputs answered (query budget spent), by role.", ["role"], registry=self.registry
        )
        self.budget_fraction = Histogram(
            "aisec_gateway_budget_used_fraction",
            "Fraction of its daily query budget a key had used, observed at each answered request.",
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["GatewayMetrics"]
