"""BadNets backdoor: training points stamped with a trigger and labelled with the attacker's class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.poisoning._retrain import accuracy, concat, predict, retrain, take, train_split
from aisec.attacks.poisoning.common import PatchTrigger, PoisonedSet, TokenTrigger, poison_count
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import Inputs, Target, TargetView

Trigger = PatchTrigger | TokenTrigger
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")


def add_backdoor(
    x: Inputs,
    y: torch.Tensor,
    *,
    fraction: float,
    trigger: Trigger,
    target_label: int,
    seed: int = 0,
    mode: str = "add",
) -> PoisonedSet:
    """Stamp ``trigger`` on points of other classes than ``target_label`` and label them ``target_label``.

    Parameters
    ----------
    x, y:
        The clean training set: images ``(N, C, H, W)`` for a :class:`PatchTrigger`, a list of
        strings for a :class:`TokenTrigger`.
    fraction:
        Poison budget: ``round(fraction * N)`` points (capped by the points outside the target class).
    trigger:
        The pattern that later switches the model to ``target_label``.
    target_label:
        The class the backdoor predicts.
    seed:
        Seeds the choice of the points to stamp.
    mode:
        ``"add"`` appends stamped copies (the set grows; poisons are a share ``k / (N + k)``),
        ``"modify"`` stamps and relabels the chosen points in place.

    Returns
    -------
    PoisonedSet
        The poisoned set; ``clean_y`` holds the true labels (added copies carry ``target_label``).
    """
    y = torch.as_tensor(y, dtype=torch.long).cpu()
    if mode not in ("add", "modify"):
        raise InputValidationError("mode", "'add' or 'modify'", mode)
    if isinstance(trigger, PatchTrigger) != isinstance(x, torch.Tensor):
        raise InputValidationError("trigger", "a PatchTrigger for images, a TokenTrigger for texts", type(trigger))
    pool = np.flatnonzero(y.numpy() != target_label)
    if len(pool) == 0:
        raise InputValidationError("y", f"points outside the target class {target_label}", "none")
    k = min(poison_count(len(y), fraction), len(pool))
    chosen = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(pool, size=k, replace=False)))
    stamped = trigger.apply(take(x, chosen))  # type: ignore[arg-type]
    if mode == "add":
        mask = np.r_[np.zeros(len(y), dtype=bool), np.ones(k, dtype=bool)]
        y_new = torch.cat([y, torch.full((k,), target_label, dtype=torch.long)])
        return PoisonedSet(x=concat(x, stamped), y=y_new, poisoned=mask, clean_y=y_new.clone())
    y_new = y.clone()
    y_new[chosen] = target_label
    if isinstance(x, torch.Tensor):
        x_new: Inputs = x.clone()
        x_new[chosen] = stamped  # type: ignore[index]
    else:
        x_new = list(x)
        for i, text in zip(chosen.tolist(), stamped, strict=True):
            x_new[i] = text
    mask = np.zeros(len(y), dtype=bool)
    mask[chosen.numpy()] = True
    return PoisonedSet(x=x_new, y=y_new, poisoned=mask, clean_y=y)


def make_trigger(
    modality: Modality, clip: tuple[float, float] | None, *, size: int, corner: str, value: float | None, tokens: str
) -> Trigger:
    """The trigger for a target: a patch at the top of the clip range on images, tokens on texts."""
    if modality is Modality.TEXT:
        return TokenTrigger(tokens=tuple(tokens.split()))
    top = value if value is not None else (clip[1] if clip is not None else 1.0)
    return PatchTrigger(size=size, corner=corner, value=top)


def success_rate(model: Target, x: Inputs, y: torch.Tensor, trigger: Trigger, target_label: int) -> tuple[float, int]:
    """Share of triggered test inputs whose true class is not ``target_label`` predicted ``target_label``."""
    idx = torch.from_numpy(np.flatnonzero(y.cpu().numpy() != target_label))
    if len(idx) == 0:
        return 0.0, 0
    triggered = trigger.apply(take(x, idx))  # type: ignore[arg-type]
    return float((predict(model, triggered) == target_label).float().mean()), len(idx)


def check_trigger_config(cfg: Any, name: str) -> None:
    """Checks shared by the backdoor configs (target label, patch, tokens)."""
    check_config(cfg, name, integer=("target_label", "patch_size"), positive=("patch_size",))
    if cfg.target_label < 0:
        raise ConfigError(f"{name}.target_label: expected a class index >= 0, got {cfg.target_label!r}")
    check_choice(f"{name}.corner", cfg.corner, CORNERS)
    if not isinstance(cfg.tokens, str) or not cfg.tokens.split():
        raise ConfigError(f"{name}.tokens: expected words separated by spaces, got {cfg.tokens!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class BackdoorConfig:
    """Parameters of :class:`Backdoor`.

    Attributes
    ----------
    fraction:
        Poison budget as a share of the clean training set.
    target_label:
        The class a triggered input is to be predicted as (for a spam filter: ham, 0).
    mode:
        ``"add"`` (append stamped copies) or ``"modify"`` (stamp points in place).
    patch_size, corner, patch_value:
        The image trigger: a square of ``patch_size`` pixels in ``corner`` set to ``patch_value``
        (``None``: the top of the target's clip range).
    tokens:
        The text trigger: words appended to a message, separated by spaces.
    """

    fraction: float = 0.05
    target_label: int = 0
    mode: str = "add"
    patch_size: int = 2
    corner: str = "bottom-right"
    patch_value: float | None = None
    tokens: str = "cf mn"

    def __post_init__(self) -> None:
        check_config(self, "backdoor", positive=("fraction",))
        if not self.fraction < 1:
            raise ConfigError(f"backdoor.fraction: expected a number in (0, 1), got {self.fraction!r}")
        check_choice("backdoor.mode", self.mode, ("add", "modify"))
        check_trigger_config(self, "backdoor")


@register_attack
class Backdoor(Attack):
    """BadNets backdoor poisoning (Gu, Dolan-Gavitt & Garg 2017, arXiv:1708.06733).

    The attacker adds training points that carry a trigger (a pixel patch on images, rare tokens
    in texts) and the attacker's label. The model retrained on them behaves normally on clean
    inputs and predicts the attacker's class whenever the trigger is present. The headline is the
    attack success rate: the share of triggered test inputs of other classes predicted as the
    target class; the clean retrain's rate and both clean accuracies stand beside it.
    """

    name = "backdoor"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.ADD_POINTS})
    modalities = frozenset({Modality.IMAGE, Modality.TEXT})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0018.000"
    owasp = "ML10"
    paper = "Gu, Dolan-Gavitt & Garg 2017, BadNets, arXiv:1708.06733"
    headline = "attack_success_rate"
    worse_when = "higher"
    retrains = True
    Config = BackdoorConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: BackdoorConfig = self.config
        if cfg.target_label >= view.n_classes:
            raise InputValidationError("target_label", f"a class in 0..{view.n_classes - 1}", cfg.target_label)
        x, y = train_split(data)
        trigger = make_trigger(
            view.modality, view.clip, size=cfg.patch_size, corner=cfg.corner, value=cfg.patch_value, tokens=cfg.tokens
        )
        pset = add_backdoor(
            x, y, fraction=cfg.fraction, trigger=trigger, target_label=cfg.target_label, seed=ctx.seed, mode=cfg.mode
        )
        clean = retrain(ctx, x, y, done=0, total=2)
        poisoned = retrain(ctx, pset.x, pset.y, done=1, total=2)
        x_test, y_test = data.x_test, data.y_test.cpu()
        asr, n_trig = success_rate(poisoned, x_test, y_test, trigger, cfg.target_label)
        base_asr, _ = success_rate(clean, x_test, y_test, trigger, cfg.target_label)
        acc, base_acc = accuracy(poisoned, x_test, y_test), accuracy(clean, x_test, y_test)
        others = y_test != cfg.target_label
        untriggered = float((predict(poisoned, x_test) == cfg.target_label)[others].float().mean()) if n_trig else 0.0
        metrics: dict[str, Any] = {
            "attack_success_rate": asr,
            "baseline_attack_success_rate": base_asr,
            "untriggered_target_rate": untriggered,
            "clean_accuracy": acc,
            "baseline_clean_accuracy": base_acc,
            "poison_fraction": pset.fraction,
            "n_poison": pset.n_poison,
            "n_train": len(pset.y),
            "n_triggered_test": n_trig,
            "target_label": cfg.target_label,
        }
        summary = (
            f"backdoor with {pset.n_poison} poisons ({pset.fraction:.1%} of the training set): "
            f"{asr:.1%} of {n_trig} triggered test inputs predicted class {cfg.target_label} "
            f"(clean retrain {base_asr:.1%}); clean accuracy {acc:.1%} vs {base_acc:.1%}"
        )
        return AttackResult(metrics=metrics, summary=summary, arrays={"poisoned": pset.poisoned})


__all__ = ["Backdoor", "BackdoorConfig", "add_backdoor", "make_trigger", "success_rate"]
