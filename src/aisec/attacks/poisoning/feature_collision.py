"""Feature collision ("Poison Frogs!"): clean-label poisons that sit on one target input in feature space."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.poisoning._retrain import train_split
from aisec.attacks.poisoning.common import PoisonedSet
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError, UnsupportedTargetError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def _kind(module: nn.Module) -> str:
    return str(getattr(module, "original_name", type(module).__name__))  # TorchScript keeps the class name there


def split_head(model: nn.Module, sample: torch.Tensor | None = None) -> tuple[FeatureFn, nn.Module]:
    """The penultimate-layer feature function of ``model`` and its final linear layer.

    The features are the input of the last linear layer. An eager model's is caught by a hook, so
    any model whose logits come out of a final ``nn.Linear`` works. TorchScript takes no hooks:
    there the layers before the last linear one are run in order (through nested containers) and
    the result is checked against the model's own output on ``sample``. A traced model (whose
    layers cannot be called one by one) is refused with :class:`UnsupportedTargetError`.
    """
    named = [(n, m) for n, m in model.named_modules() if _kind(m) == "Linear"]
    if not named:
        raise UnsupportedTargetError("feature collision needs a model whose logits come from a final linear layer")
    path, head = named[-1]
    if not isinstance(model, torch.jit.ScriptModule):

        def features(x: torch.Tensor) -> torch.Tensor:
            caught: list[torch.Tensor] = []
            handle = head.register_forward_pre_hook(lambda _m, args: caught.append(args[0]))
            try:
                model(x)
            finally:
                handle.remove()
            return caught[-1].flatten(1)

        return features, head
    layers: list[nn.Module] = []
    container: nn.Module = model
    for name in path.split("."):
        children = list(container.named_children())
        idx = [n for n, _ in children].index(name)
        if idx != len(children) - 1:
            raise UnsupportedTargetError("feature collision: the TorchScript model's last linear layer is not its last")
        layers += [m for _, m in children[:idx]]
        container = children[idx][1]

    def chained(x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = layer(x)
        return x.flatten(1)

    if sample is not None:
        with torch.no_grad():
            try:
                same = torch.allclose(head(chained(sample)), model(sample), atol=1e-4, rtol=1e-3)
            except RuntimeError as exc:  # a traced model's layers cannot be called one by one
                raise UnsupportedTargetError(
                    f"feature collision cannot run this TorchScript model's layers ({exc}); "
                    "give an eager nn.Module or a torch.jit.script model"
                ) from None
        if not same:
            raise UnsupportedTargetError(
                "feature collision cannot find this TorchScript model's penultimate layer; give an eager nn.Module"
            )
    return chained, head


def craft_poisons(
    features: FeatureFn,
    target_x: torch.Tensor,
    bases: torch.Tensor,
    *,
    beta: float = 0.01,
    iters: int = 200,
    lr: float = 0.5,
    opacity: float = 0.0,
    clip: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Forward-backward splitting for ``min_p ||f(p) - f(t)||^2 / ||f(t)||^2 + beta ||p - b||^2``.

    Parameters
    ----------
    features:
        The frozen feature extractor ``f``.
    target_x:
        One target input ``t`` (shape ``(1, ...)``).
    bases:
        Base-class images ``b`` to start from (shape ``(m, ...)``).
    beta, iters, lr:
        Weight of the input-space proximity, steps, and step size of the forward (gradient) step;
        the backward step is the proximal map of the proximity term.
    opacity:
        Watermarking (Shafahi et al. 2018, section 4.2): the bases are first blended with the
        target at this opacity; 0 turns it off.
    clip:
        Valid pixel range.
    """
    with torch.no_grad():
        f_t = features(target_x).detach()
        scale = f_t.pow(2).sum().clamp_min(1e-12)
        b = ((1 - opacity) * bases + opacity * target_x).clamp(*clip)
    p = b.clone()
    for _ in range(iters):
        p.requires_grad_(True)
        loss = (features(p) - f_t).pow(2).sum(1).div(scale).sum()
        (grad,) = torch.autograd.grad(loss, p)
        with torch.no_grad():
            p = p - lr * grad  # forward step on the feature distance
            p = ((p + lr * beta * b) / (1 + lr * beta)).clamp(*clip)  # backward (proximal) step
    return p.detach()


def retrain_head(
    head: nn.Module, feats: torch.Tensor, y: torch.Tensor, *, epochs: int = 200, lr: float = 0.01, seed: int = 0
) -> nn.Linear:
    """Fine-tune a copy of the final layer on frozen features (the paper's transfer-learning victim)."""
    torch.manual_seed(seed)
    weight, bias = head.weight.detach(), head.bias
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None).to(feats.device)
    new.load_state_dict({k: v.detach().clone() for k, v in head.state_dict().items()})
    opt = torch.optim.Adam(new.parameters(), lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(new(feats), y).backward()
        opt.step()
    return new.eval()


@dataclass(frozen=True, kw_only=True, slots=True)
class FeatureCollisionConfig:
    """Parameters of :class:`FeatureCollision`.

    Attributes
    ----------
    base_class:
        The class the poisons (and, if the attack succeeds, the target input) carry.
    n_targets:
        Target test inputs attacked one at a time (each correctly classified, of another class).
    n_poisons:
        Poisons per target, crafted from randomly chosen base-class training images.
    beta, iters, lr, opacity:
        See :func:`craft_poisons`.
    epochs:
        Full-batch Adam steps when the victim fine-tunes its final layer.
    """

    base_class: int = 0
    n_targets: int = 5
    n_poisons: int = 5
    beta: float = 0.01
    iters: int = 200
    lr: float = 0.5
    opacity: float = 0.3
    epochs: int = 200

    def __post_init__(self) -> None:
        ints = ("base_class", "n_targets", "n_poisons", "iters", "epochs")
        check_config(self, "feature-collision", integer=ints, positive=(*ints[1:], "lr"))
        check_config(self, "feature-collision", non_negative=("beta", "base_class"))
        if not 0.0 <= self.opacity < 1.0:
            raise ConfigError(f"feature-collision.opacity: expected a number in [0, 1), got {self.opacity!r}")


@register_attack
class FeatureCollision(Attack):
    """Feature-collision poisoning, "Poison Frogs!" (Shafahi et al. 2018, arXiv:1804.00792).

    A white-box attacker who knows the feature extractor picks one target test input and crafts a
    few poisons from images of a base class: each stays close to its base image in input space (so
    its true label is still the base class, a clean label) but collides with the target in the
    penultimate-layer feature space. The victim fine-tunes its final layer on the clean training
    set plus the poisons (the paper's transfer-learning setting; the feature extractor is frozen,
    so aisec does this itself and needs no recipe) and then labels the target input as the base
    class. The headline is the share of targets won, beside the baseline of adding the unperturbed
    base images instead.
    """

    name = "feature-collision"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.PARAMETERS, Capability.ADD_POINTS})
    modalities = frozenset({Modality.IMAGE})
    knowledge = Knowledge.WHITE_BOX
    atlas = "AML.T0020"
    owasp = "ML02"
    paper = "Shafahi et al. 2018, Poison Frogs! Targeted Clean-Label Poisoning Attacks, arXiv:1804.00792"
    headline = "attack_success_rate"
    worse_when = "higher"
    Config = FeatureCollisionConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: FeatureCollisionConfig = self.config
        model = view.parameters
        if not isinstance(model, nn.Module):
            raise UnsupportedTargetError(f"{self.name} needs a torch model's layers, got {type(model).__name__}")
        if cfg.base_class >= view.n_classes:
            raise InputValidationError("base_class", f"a class in 0..{view.n_classes - 1}", cfg.base_class)
        x, y = train_split(data)
        assert isinstance(x, torch.Tensor) and isinstance(data.x_test, torch.Tensor)
        dev = view.device
        clip = view.clip or (float(x.min()), float(x.max()))
        model = model.eval()
        features, head = split_head(model, x[:8].to(dev))
        trainable = [p for p in model.parameters() if p.requires_grad]
        for p in trainable:  # the extractor is frozen; gradients flow to the poisons only
            p.requires_grad_(False)
        try:
            with torch.no_grad():
                f_train = torch.cat([features(x[i : i + 512].to(dev)) for i in range(0, len(x), 512)])
                xt = data.x_test
                f_test = torch.cat([features(xt[i : i + 512].to(dev)) for i in range(0, len(xt), 512)])
                pred = head(f_test).argmax(1).cpu()
            y_test = data.y_test.cpu()
            rng = np.random.default_rng(ctx.seed)
            candidates = np.flatnonzero(((y_test != cfg.base_class) & (pred == y_test)).numpy())
            base_pool = np.flatnonzero(y.numpy() == cfg.base_class)
            if len(candidates) == 0 or len(base_pool) < cfg.n_poisons:
                raise InputValidationError("data", f"test inputs of other classes and {cfg.n_poisons} base images", 0)
            targets = rng.choice(candidates, size=min(cfg.n_targets, len(candidates)), replace=False)
            y_aug = torch.cat([y, torch.full((cfg.n_poisons,), cfg.base_class)]).to(dev)
            clean_head = retrain_head(head, f_train, y.to(dev), epochs=cfg.epochs, seed=ctx.seed)
            with torch.no_grad():
                clean_acc = float((clean_head(f_test).argmax(1).cpu() == y_test).float().mean())
            wins, base_wins, accs, feat_dist, l2 = [], [], [], [], []
            poisons_all = []
            for i, t_idx in enumerate(targets):
                t = data.x_test[int(t_idx) : int(t_idx) + 1].to(dev)
                bases = x[rng.choice(base_pool, size=cfg.n_poisons, replace=False)].to(dev)
                start = ((1 - cfg.opacity) * bases + cfg.opacity * t).clamp(*clip)
                poisons = craft_poisons(
                    features, t, bases, beta=cfg.beta, iters=cfg.iters, lr=cfg.lr, opacity=cfg.opacity, clip=clip
                )
                poisons_all.append(poisons.cpu().numpy())
                with torch.no_grad():
                    f_t, f_p, f_s = features(t), features(poisons), features(start)
                    feat_dist.append(float(((f_p - f_t).norm(dim=1) / f_t.norm().clamp_min(1e-12)).mean()))
                    l2.append(float((poisons - bases).flatten(1).norm(dim=1).mean()))
                for feats_p, out in ((f_p, wins), (f_s, base_wins)):
                    h = retrain_head(head, torch.cat([f_train, feats_p]), y_aug, epochs=cfg.epochs, seed=ctx.seed)
                    with torch.no_grad():
                        out.append(int(h(f_t).argmax(1).item() == cfg.base_class))
                        if out is wins:
                            accs.append(float((h(f_test).argmax(1).cpu() == y_test).float().mean()))
                ctx.step(i + 1, len(targets))
        finally:
            for p in trainable:
                p.requires_grad_(True)
        n = len(targets)
        metrics: dict[str, Any] = {
            "attack_success_rate": float(np.mean(wins)),
            "baseline_attack_success_rate": float(np.mean(base_wins)),
            "clean_accuracy": float(np.mean(accs)),
            "baseline_clean_accuracy": clean_acc,
            "n_targets": n,
            "n_poisons_per_target": cfg.n_poisons,
            "poison_fraction": cfg.n_poisons / (len(y) + cfg.n_poisons),
            "mean_relative_feature_distance": float(np.mean(feat_dist)),
            "mean_l2_to_base": float(np.mean(l2)),
        }
        summary = (
            f"feature collision: {sum(wins)} of {n} target inputs labelled class {cfg.base_class} after fine-tuning "
            f"the final layer with {cfg.n_poisons} clean-label poisons each (unperturbed bases: {sum(base_wins)} of {n}); "
            f"clean accuracy {metrics['clean_accuracy']:.1%} vs {clean_acc:.1%}"
        )
        mask = np.r_[np.zeros(len(y), dtype=bool), np.ones(cfg.n_poisons, dtype=bool)]
        arrays = {
            "poisoned": mask,
            "target_indices": targets.astype(np.int64),
            "success": np.asarray(wins, dtype=bool),
            "poisons": np.stack(poisons_all).astype(np.float32),
        }
        return AttackResult(metrics=metrics, summary=summary, arrays=arrays)


def poison_frog(
    x: torch.Tensor, y: torch.Tensor, model: nn.Module, target_x: torch.Tensor, *, base_class: int,
    n_poisons: int = 5, seed: int = 0, **craft: Any,
) -> PoisonedSet:  # fmt: skip
    """The training set plus ``n_poisons`` feature-collision poisons against ``target_x``, labelled ``base_class``."""
    features, _ = split_head(model.eval(), x[:8])
    pool = np.flatnonzero(torch.as_tensor(y).cpu().numpy() == base_class)
    if len(pool) < n_poisons:
        raise InputValidationError("y", f"at least {n_poisons} images of the base class {base_class}", len(pool))
    bases = x[np.random.default_rng(seed).choice(pool, size=n_poisons, replace=False)]
    poisons = craft_poisons(features, target_x, bases, **craft)
    mask = np.r_[np.zeros(len(y), dtype=bool), np.ones(n_poisons, dtype=bool)]
    y_new = torch.cat([torch.as_tensor(y).cpu(), torch.full((n_poisons,), base_class)])
    return PoisonedSet(x=torch.cat([x, poisons.cpu()]), y=y_new, poisoned=mask, clean_y=y_new.clone())


__all__ = ["FeatureCollision", "FeatureCollisionConfig", "craft_poisons", "poison_frog", "retrain_head", "split_head"]
