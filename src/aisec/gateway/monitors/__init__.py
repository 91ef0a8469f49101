"""Monitors of the gateway: extraction (PRADA), probing, input drift, low confidence and latency.

Each monitor watches every API key's traffic through :meth:`Monitor.observe` and returns
:class:`Alert` objects; :func:`build_monitors` makes them from the gateway's settings. Their state
lives in the gateway's store, so replicas sharing a Redis store share what they have seen.
"""

from aisec.gateway.monitors.base import (
    ACTIONS,
    MONITORS,
    Action,
    Alert,
    Monitor,
    StoreLike,
    build_monitors,
    register_monitor,
)
from aisec.gateway.monitors.drift import DriftMonitor
from aisec.gateway.monitors.latency import LatencyMonitor
from aisec.gateway.monitors.low_confidence import LowConfidenceMonitor
from aisec.gateway.monitors.prada import PradaMonitor
from aisec.gateway.monitors.probing import ProbingMonitor

__all__ = [
    "ACTIONS",
    "MONITORS",
    "Action",
    "Alert",
    "DriftMonitor",
    "LatencyMonitor",
    "LowConfidenceMonitor",
    "Monitor",
    "PradaMonitor",
    "ProbingMonitor",
    "StoreLike",
    "build_monitors",
    "register_monitor",
]
