"""Universal adversarial patch: one small square, pasted anywhere, that fools the model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aisec.attacks.base import AttackContext, AttackResult, check_config
from aisec.attacks.integrity.common import WhiteBoxEvasion, evasion_inputs
from aisec.core.goals import Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class PatchConfig:
    """Parameters of :class:`AdversarialPatch`.

    Attributes
    ----------
    min_size, max_size:
        Side lengths of the square patches, in pixels; one patch is trained and evaluated per
        size from ``min_size`` to ``max_size`` (2..4 on 8x8 digits: 6% to 25% of the image).
    target_class:
        Class the patch pushes every input to; ``None`` trains an untargeted patch that only
        pushes inputs away from their true class.
    steps:
        Adam steps per patch, each on a fresh batch of training images at fresh random places
        (expectation over transformation).
    lr:
        Adam step size on the patch's unconstrained parameters.
    batch_size:
        Training images per step.
    n_samples:
        Test images the patch is evaluated on; ``None`` takes the whole test split.
    """

    min_size: int = 2
    max_size: int = 4
    target_class: int | None = None
    steps: int = 150
    lr: float = 0.1
    batch_size: int = 128
    n_samples: int | None = 500

    def __post_init__(self) -> None:
        ints = ("min_size", "max_size", "steps", "batch_size")
        check_config(self, "patch", integer=ints, positive=(*ints, "lr"))
        if self.min_size > self.max_size:
            raise ConfigError(f"patch.min_size: expected at most max_size={self.max_size}, got {self.min_size}")
        if self.target_class is not None:
            check_config(self, "patch", integer=("target_class",), non_negative=("target_class",))
        check_config(self, "patch", counts=("n_samples",))


def paste(x: torch.Tensor, patch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) with ``patch`` (C, s, s) pasted with its corner at (rows[n], cols[n]).

    Differentiable in ``patch``; no Python loop over the batch.
    """
    s = patch.shape[-1]
    h = torch.arange(x.shape[-2], device=x.device)
    w = torch.arange(x.shape[-1], device=x.device)
    dh = h[None, :] - rows[:, None]  # (N, H)
    dw = w[None, :] - cols[:, None]  # (N, W)
    inside = ((dh >= 0) & (dh < s))[:, :, None] & ((dw >= 0) & (dw < s))[:, None, :]  # (N, H, W)
    canvas = patch[:, dh.clamp(0, s - 1)[:, :, None], dw.clamp(0, s - 1)[:, None, :]]  # (C, N, H, W)
    mask = inside[:, None].to(x.dtype)
    return x * (1 - mask) + canvas.permute(1, 0, 2, 3) * mask


def _places(n: int, s: int, shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> tuple:
    rows = torch.randint(0, shape[-2] - s + 1, (n,), generator=gen).to(device)
    cols = torch.randint(0, shape[-1] - s + 1, (n,), generator=gen).to(device)
    return rows, cols


@register_attack
class AdversarialPatch(WhiteBoxEvasion):
    """Universal adversarial patch (Brown et al. 2017, "Adversarial Patch", arXiv:1712.09665).

    White-box. For each patch size, one square patch is optimized with Adam over the training
    images at random positions (expectation over transformation, Athalye et al. 2018,
    arXiv:1707.07397), towards ``target_class`` or, untargeted, away from each image's class. It
    is then pasted at a random position on each test image. The finding gives the success rate
    against patch size: the share of correctly classified test images (targeted: of those not of
    the target class) that the patch sends to a wrong (targeted: the target) class.
    """

    name = "patch"
    modalities = frozenset({Modality.IMAGE})
    paper = "Brown et al. 2017, Adversarial Patch, arXiv:1712.09665"
    headline = "attack_success_rate"
    worse_when = "higher"
    Config = PatchConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: PatchConfig = self.config
        x_test, y_test = evasion_inputs(view, data, cfg.n_samples, ctx.seed)
        assert isinstance(data.x_train, torch.Tensor)  # image data
        x_train = view.validate(data.x_train, argument="data.x_train")
        y_train = data.y_train.to(view.device)
        side = min(x_test.shape[-2:])
        if x_test.ndim != 4 or cfg.max_size > side:
            raise InputValidationError("max_size", f"a patch side of at most {side} pixels", cfg.max_size)
        if cfg.target_class is not None and cfg.target_class >= view.n_classes:
            raise InputValidationError("target_class", f"a label below {view.n_classes}", cfg.target_class)
        if cfg.target_class is not None:
            keep = y_train != cfg.target_class
            x_train, y_train = x_train[keep], y_train[keep]
        lo, hi = view.clip or (float(x_train.min()), float(x_train.max()))
        model = view.model
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        with torch.no_grad():
            clean_ok = model(x_test).argmax(1) == y_test
        sizes = list(range(cfg.min_size, cfg.max_size + 1))
        rates, robust, patches = [], [], []
        for k, s in enumerate(sizes):
            patch = self._train(model, x_train, y_train, s, (lo, hi), gen, ctx, k, len(sizes))
            rows, cols = _places(len(y_test), s, tuple(x_test.shape), gen, view.device)
            with torch.no_grad():
                pred = model(paste(x_test, patch, rows, cols)).argmax(1)
            if cfg.target_class is None:
                pool = clean_ok
                hit = pred != y_test
            else:
                pool = clean_ok & (y_test != cfg.target_class)
                hit = pred == cfg.target_class
            rates.append((hit & pool).sum().item() / max(int(pool.sum().item()), 1))
            robust.append((clean_ok & (pred == y_test)).float().mean().item())
            patches.append(patch.detach().cpu().numpy())
        ctx.step(len(sizes) * cfg.steps, len(sizes) * cfg.steps)
        metrics = {
            "curve_patch_size": sizes,
            "curve_success_rate": rates,
            "patch_size": sizes[-1],
            "attack_success_rate": rates[-1],
            "clean_accuracy": clean_ok.float().mean().item(),
            "robust_accuracy": robust[-1],
            "n": len(y_test),
        }
        goal = "untargeted" if cfg.target_class is None else f"to class {cfg.target_class}"
        summary = (
            f"adversarial patch ({goal}): success "
            + ", ".join(f"{r:.1%} at {s}x{s}" for s, r in zip(sizes, rates, strict=True))
            + f" (n={len(y_test)})"
        )
        return AttackResult(metrics=metrics, summary=summary, arrays={"patch": patches[-1]})

    def _train(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        s: int,
        clip: tuple[float, float],
        gen: torch.Generator,
        ctx: AttackContext,
        k: int,
        n_sizes: int,
    ) -> torch.Tensor:
        """One s x s patch in the clip range, optimized over random training images and places."""
        cfg: PatchConfig = self.config
        lo, hi = clip
        w = torch.randn((x.shape[1], s, s), generator=gen).to(x.device).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=cfg.lr)
        for step in range(cfg.steps):
            idx = torch.randint(0, len(y), (min(cfg.batch_size, len(y)),), generator=gen).to(x.device)
            rows, cols = _places(len(idx), s, tuple(x.shape), gen, x.device)
            with torch.enable_grad():
                logits = model(paste(x[idx], lo + (hi - lo) * torch.sigmoid(w), rows, cols))
                if cfg.target_class is None:
                    true = logits.gather(1, y[idx, None]).squeeze(1)
                    other = logits.scatter(1, y[idx, None], float("-inf")).amax(1)
                    loss = (true - other).clamp(min=-5.0).mean()  # margin: stop pushing once well past it
                else:
                    goal = torch.full_like(y[idx], cfg.target_class)
                    loss = F.cross_entropy(logits, goal)
                opt.zero_grad()
                loss.backward()
            opt.step()
            ctx.step(k * cfg.steps + step + 1, n_sizes * cfg.steps)
        return (lo + (hi - lo) * torch.sigmoid(w)).detach()
