"""Attacks, grouped by the security goal they hurt. Importing this package registers the built-ins."""

from aisec.attacks.availability import dictionary, focused, sponge
from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.attacks.confidentiality import equation_solving, jbda, knockoff, text_words, thief
from aisec.attacks.integrity import (
    apgd,
    cw,
    deepfool,
    ensemble,
    fgsm,
    good_word,
    hopskipjump,
    patch,
    pgd,
    square,
    transfer,
    word_edit,
)
from aisec.attacks.poisoning import backdoor, clean_label, feature_collision, label_flip
from aisec.attacks.privacy import (
    attribute,
    dp_audit,
    inversion,
    inversion_blackbox,
    label_only,
    lira,
    loss_threshold,
    property_inference,
    rmia,
    shokri,
)

BUILTIN_MODULES = (
    fgsm,
    pgd,
    apgd,
    cw,
    deepfool,
    square,
    hopskipjump,
    ensemble,
    transfer,
    patch,
    good_word,
    word_edit,
    label_flip,
    backdoor,
    clean_label,
    feature_collision,
    equation_solving,
    text_words,
    knockoff,
    jbda,
    thief,
    loss_threshold,
    lira,
    rmia,
    label_only,
    inversion,
    inversion_blackbox,
    attribute,
    shokri,
    property_inference,
    dp_audit,
    dictionary,
    focused,
    sponge,
)

__all__ = ["BUILTIN_MODULES", "Attack", "AttackContext", "AttackResult"]
