"""Clean-label backdoor: target-class images made hard to learn, then stamped; labels stay true."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.poisoning._retrain import accuracy, retrain, train_split
from aisec.attacks.poisoning.backdoor import check_trigger_config, make_trigger, success_rate
from aisec.attacks.poisoning.common import PatchTrigger, PoisonedSet, poison_count
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality, OutputKind
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError, UnsupportedTargetError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


def _pgd_away(
    model: nn.Module, x: torch.Tensor, label: int, *, eps: float, steps: int, clip: tuple[float, float]
) -> torch.Tensor:
    """L-inf PGD that raises the loss of ``label`` (the images' own class) within ``eps``."""
    alpha = 2.5 * eps / steps
    y = torch.full((len(x),), label, dtype=torch.long, device=x.device)
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv + alpha * grad.sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(*clip)
    return adv.detach()


def clean_label_backdoor(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    fraction: float,
    trigger: PatchTrigger,
    target_label: int,
    seed: int = 0,
    model: nn.Module | None = None,
    eps: float = 0.3,
    steps: int = 20,
    clip: tuple[float, float] = (0.0, 1.0),
) -> PoisonedSet:
    """Poison target-class images in place, keeping their (true) labels.

    Parameters
    ----------
    x, y:
        Clean training images ``(N, C, H, W)`` and labels.
    fraction:
        Poison budget as a share of the training set, capped by the size of the target class.
    trigger:
        The patch stamped on the poisons (after the perturbation, so it is intact).
    target_label:
        Class whose images are poisoned and which triggered inputs are to be predicted as.
    seed:
        Seeds the choice of images.
    model:
        Surrogate (inputs to logits) for the adversarial perturbation; ``None`` stamps the
        trigger alone (the plain clean-label baseline that Turner et al. show to fail).
    eps, steps, clip:
        L-inf radius, PGD steps and the valid pixel range.

    Returns
    -------
    PoisonedSet
        Labels unchanged; ``poisoned`` marks the modified images.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 3:
        raise InputValidationError("x", "images of shape (N, C, H, W)", getattr(x, "shape", type(x)))
    y = torch.as_tensor(y, dtype=torch.long).cpu()
    pool = np.flatnonzero(y.numpy() == target_label)
    if len(pool) == 0:
        raise InputValidationError("y", f"training images of the target class {target_label}", "none")
    k = min(poison_count(len(y), fraction), len(pool))
    chosen = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(pool, size=k, replace=False)))
    images = x[chosen]
    if model is not None:
        dev = next(iter(model.parameters()), torch.empty(0)).device
        images = _pgd_away(model, images.to(dev), target_label, eps=eps, steps=steps, clip=clip).cpu()
    x_new = x.clone()
    x_new[chosen] = trigger.apply(images)
    mask = np.zeros(len(y), dtype=bool)
    mask[chosen.numpy()] = True
    return PoisonedSet(x=x_new, y=y.clone(), poisoned=mask, clean_y=y)


@dataclass(frozen=True, kw_only=True, slots=True)
class CleanLabelConfig:
    """Parameters of :class:`CleanLabelBackdoor`.

    Attributes
    ----------
    fraction:
        Poison budget as a share of the training set (capped by the size of the target class).
    target_label:
        The class whose images are poisoned and that triggered inputs should be predicted as.
    eps, steps:
        L-inf radius (in input units) and steps of the PGD perturbation.
    surrogate:
        ``"recipe"``: the attacker trains the recipe on the clean data it holds and perturbs
        against that model (grey-box); ``"target"``: against the target's own gradients (white-box).
    patch_size, corner, patch_value, tokens:
        The trigger, as for ``backdoor`` (``tokens`` is unused: images only).
    """

    fraction: float = 0.05
    target_label: int = 0
    eps: float = 0.3
    steps: int = 20
    surrogate: str = "recipe"
    patch_size: int = 2
    corner: str = "bottom-right"
    patch_value: float | None = None
    tokens: str = "cf mn"

    def __post_init__(self) -> None:
        name = "clean-label-backdoor"
        check_config(self, name, positive=("fraction", "eps", "steps"), integer=("steps",))
        if not self.fraction < 1:
            raise ConfigError(f"{name}.fraction: expected a number in (0, 1), got {self.fraction!r}")
        check_choice(f"{name}.surrogate", self.surrogate, ("recipe", "target"))
        check_trigger_config(self, name)


@register_attack
class CleanLabelBackdoor(Attack):
    """Clean-label backdoor (Turner, Tsipras & Madry 2019, arXiv:1912.02771).

    A BadNets poison carries a wrong label, which a human reviewer can spot. Here only images of
    the target class are poisoned and their labels stay true: each is first perturbed
    adversarially (L-inf PGD on a surrogate) so that its content no longer explains its label,
    then stamped with the trigger, so the model learns the trigger as the evidence for the class.
    The attacker modifies existing training points (``modify-points``). The finding reports the
    success rate on triggered test inputs of other classes beside two baselines: the same poisons
    without the perturbation (trigger only) and the clean retrain.
    """

    name = "clean-label-backdoor"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.MODIFY_POINTS})
    modalities = frozenset({Modality.IMAGE})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0020"
    owasp = "ML02"
    paper = "Turner, Tsipras & Madry 2019, Label-Consistent Backdoor Attacks, arXiv:1912.02771"
    headline = "attack_success_rate"
    worse_when = "higher"
    retrains = True
    Config = CleanLabelConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: CleanLabelConfig = self.config
        if cfg.target_label >= view.n_classes:
            raise InputValidationError("target_label", f"a class in 0..{view.n_classes - 1}", cfg.target_label)
        x, y = train_split(data)
        assert isinstance(x, torch.Tensor)
        clip = view.clip or (float(x.min()), float(x.max()))
        trigger = make_trigger(
            view.modality, clip, size=cfg.patch_size, corner=cfg.corner, value=cfg.patch_value, tokens=cfg.tokens
        )
        assert isinstance(trigger, PatchTrigger)
        total = 3
        clean = retrain(ctx, x, y, done=0, total=total)
        if cfg.surrogate == "target":
            surrogate = view.model  # refuses unless white-box
        else:  # the attacker's own copy: the recipe on the clean data (the same run as the baseline)
            surrogate_view = clean.view(Knowledge.WHITE_BOX, OutputKind.PROBABILITIES)
            if Capability.GRADIENTS not in surrogate_view.capabilities:
                raise UnsupportedTargetError(
                    f"{self.name} perturbs with a surrogate's gradients; the {clean.kind} recipe gives none"
                )
            surrogate = surrogate_view.model
        common = {"fraction": cfg.fraction, "trigger": trigger, "target_label": cfg.target_label, "seed": ctx.seed}
        plain = clean_label_backdoor(x, y, **common)  # type: ignore[arg-type]
        pset = clean_label_backdoor(x, y, model=surrogate, eps=cfg.eps, steps=cfg.steps, clip=clip, **common)  # type: ignore[arg-type]
        plain_model = retrain(ctx, plain.x, plain.y, done=1, total=total)
        poisoned = retrain(ctx, pset.x, pset.y, done=2, total=total)
        x_test, y_test = data.x_test, data.y_test.cpu()
        asr, n_trig = success_rate(poisoned, x_test, y_test, trigger, cfg.target_label)
        plain_asr, _ = success_rate(plain_model, x_test, y_test, trigger, cfg.target_label)
        base_asr, _ = success_rate(clean, x_test, y_test, trigger, cfg.target_label)
        acc, base_acc = accuracy(poisoned, x_test, y_test), accuracy(clean, x_test, y_test)
        requested = poison_count(len(y), cfg.fraction)
        metrics: dict[str, Any] = {
            "attack_success_rate": asr,
            "trigger_only_attack_success_rate": plain_asr,
            "baseline_attack_success_rate": base_asr,
            "clean_accuracy": acc,
            "baseline_clean_accuracy": base_acc,
            "poison_fraction": pset.fraction,
            "n_poison": pset.n_poison,
            "n_target_class_train": int((y == cfg.target_label).sum()),
            "n_triggered_test": n_trig,
            "target_label": cfg.target_label,
        }
        flags = []
        if pset.n_poison < requested:
            flags.append(f"budget capped: {requested} poisons asked, the target class has {pset.n_poison} images")
        summary = (
            f"clean-label backdoor on {pset.n_poison} class-{cfg.target_label} images ({pset.fraction:.1%}), "
            f"eps {cfg.eps:g}: {asr:.1%} of {n_trig} triggered inputs predicted {cfg.target_label} "
            f"(trigger only {plain_asr:.1%}, clean retrain {base_asr:.1%}); clean accuracy {acc:.1%} vs {base_acc:.1%}"
        )
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays={"poisoned": pset.poisoned})


__all__ = ["CleanLabelBackdoor", "CleanLabelConfig", "clean_label_backdoor"]
