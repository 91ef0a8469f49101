"""aisec: attack, rate and harden machine-learning systems.

The public API is what this module re-exports; everything else is internal.
"""

from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.core.budget import QueryBudget
from aisec.core.config import Spec, load_spec, parse_spec
from aisec.core.findings import SCHEMA_VERSION, Finding, finding_json_schema
from aisec.core.goals import Capability, Goal, Knowledge, Modality, OutputKind, ProtectionNeed
from aisec.core.threat_model import ThreatModel
from aisec.data import Dataset, load_breast_cancer, load_csv, load_digits, load_npz, load_sms_spam
from aisec.errors import (
    AccessDeniedError,
    AisecError,
    BudgetExceededError,
    ConfigError,
    InputValidationError,
    MissingDependencyError,
    TargetUnavailableError,
    UnsupportedTargetError,
    UntrustedFileError,
)
from aisec.registry import attacks, get_attack, register_attack
from aisec.targets import SklearnTarget, Target, TargetView, TorchTarget, load_target

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "AccessDeniedError",
    "AisecError",
    "Attack",
    "AttackContext",
    "AttackResult",
    "BudgetExceededError",
    "Capability",
    "ConfigError",
    "Dataset",
    "Finding",
    "Goal",
    "InputValidationError",
    "Knowledge",
    "MissingDependencyError",
    "Modality",
    "OutputKind",
    "ProtectionNeed",
    "QueryBudget",
    "SklearnTarget",
    "Spec",
    "Target",
    "TargetUnavailableError",
    "TargetView",
    "ThreatModel",
    "TorchTarget",
    "UnsupportedTargetError",
    "UntrustedFileError",
    "__version__",
    "attacks",
    "finding_json_schema",
    "get_attack",
    "load_breast_cancer",
    "load_csv",
    "load_digits",
    "load_npz",
    "load_sms_spam",
    "load_spec",
    "load_target",
    "parse_spec",
    "register_attack",
]
