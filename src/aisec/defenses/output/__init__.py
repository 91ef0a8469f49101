"""Output hardening: label-only, top-k, rounding, calibrated noise and reverse-sigmoid poisoning."""

from aisec.defenses.output.harden import HardenedTarget, OutputPolicy, evaluate_policy

__all__ = ["HardenedTarget", "OutputPolicy", "evaluate_policy"]
