"""Poison detectors: flag suspected poison in a training set, scored against the attacker's mask.

Each detector takes the (possibly poisoned) training set and, where it needs one, a model trained on
it, and returns a :class:`Detection`; :func:`evaluate_detection` gives precision, recall and the
model retrained without the flagged points; :func:`scan` runs several detectors on one set.
"""

from aisec.defenses.data.poison.activation_clustering import ActivationClustering, ActivationClusteringConfig
from aisec.defenses.data.poison.common import Detection, Detector, detectors, get_detector, representations
from aisec.defenses.data.poison.confident_learning import ConfidentLearning, ConfidentLearningConfig
from aisec.defenses.data.poison.evaluate import (
    DetectionReport,
    RetrainMetrics,
    evaluate_detection,
    precision_recall,
    retrain_metrics,
)
from aisec.defenses.data.poison.isolation import IsolationConfig, IsolationOutliers
from aisec.defenses.data.poison.scan import DEFAULT_DETECTORS, ScanRow, load_training_npz, scan
from aisec.defenses.data.poison.spectral import SpectralConfig, SpectralSignatures
from aisec.defenses.data.poison.token_trigger import TokenTrigger, TokenTriggerConfig

__all__ = [
    "DEFAULT_DETECTORS",
    "ActivationClustering",
    "ActivationClusteringConfig",
    "ConfidentLearning",
    "ConfidentLearningConfig",
    "Detection",
    "DetectionReport",
    "Detector",
    "IsolationConfig",
    "IsolationOutliers",
    "RetrainMetrics",
    "ScanRow",
    "SpectralConfig",
    "SpectralSignatures",
    "TokenTrigger",
    "TokenTriggerConfig",
    "detectors",
    "evaluate_detection",
    "get_detector",
    "load_training_npz",
    "precision_recall",
    "representations",
    "retrain_metrics",
    "scan",
]
