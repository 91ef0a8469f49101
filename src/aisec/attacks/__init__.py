"""Attacks, grouped by the security goal they hurt. Importing this package registers the built-ins."""

from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.attacks.integrity import fgsm, pgd
from aisec.attacks.privacy import loss_threshold

BUILTIN_MODULES = (fgsm, pgd, loss_threshold)

__all__ = ["BUILTIN_MODULES", "Attack", "AttackContext", "AttackResult"]
