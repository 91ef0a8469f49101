"""Many small MLPs trained as one stacked model, and the ordinary one-model training they replace.

A grey-box attacker knows the target's training recipe (:class:`TrainingRecipe`). Membership
attacks such as LiRA (Carlini et al. 2022, arXiv:2112.03570) and the shadow-model attack (Shokri et
al. 2017, arXiv:1610.05820) train many copies of it, so :func:`train_stacked` trains ``K`` MLPs as
one stacked model: every layer is a batched matrix product (``torch.baddbmm``) over a leading model
axis, gradients are written out by hand (no autograd graph), each model sees its own random half of
the data in its own batch order, and one fused Adam step, being elementwise, updates each model
exactly as a separate optimizer would; :func:`aisec.attacks.privacy.recipe.train_mlp` is the
ordinary one-model training it replaces.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from aisec.attacks.privacy.precision import Precision, resolve_precision
from aisec.attacks.privacy.recipe import TrainingRecipe, flat_rows
from aisec.errors import InputValidationError


class StackedMLP:
    """``K`` MLPs of the same shape as stacked weights ``(K, fan_in, fan_out)`` and biases ``(K, 1, fan_out)``."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> None:
        self.weights = weights
        self.biases = biases

    @property
    def k(self) -> int:
        return self.weights[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    @classmethod
    def init(cls, k: int, sizes: list[int], gen: torch.Generator, device: torch.device) -> StackedMLP:
        """``nn.Linear``'s default initialisation, uniform in +-1/sqrt(fan_in), for every model."""
        ws, bs = [], []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = 1.0 / math.sqrt(fan_in)
            ws.append(((torch.rand(k, fan_in, fan_out, generator=gen) * 2 - 1) * bound).to(device))
            bs.append(((torch.rand(k, 1, fan_out, generator=gen) * 2 - 1) * bound).to(device))
        return cls(ws, bs)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, N, C)`` of every model; ``x`` is ``(N, ...)`` (shared) or ``(K, N, d)``."""
        h = flat_rows(x).unsqueeze(0).expand(self.k, -1, -1) if x.ndim != 3 or x.shape[0] != self.k else x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"w{i}": w.detach().cpu() for i, w in enumerate(self.weights)}
        return out | {f"b{i}": b.detach().cpu() for i, b in enumerate(self.biases)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: torch.device) -> StackedMLP:
        n = sum(1 for key in state if key[0] == "w" and key[1:].isdigit())
        return cls([state[f"w{i}"].to(device) for i in range(n)], [state[f"b{i}"].to(device) for i in range(n)])


def half_masks(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """``(K, N)`` training masks: pairs of complementary random halves, so each point is in K/2 models (K even)."""
    rows = []
    for _ in range((k + 1) // 2):
        m = torch.zeros(n, dtype=torch.bool)
        m[torch.randperm(n, generator=gen)[: n // 2]] = True
        rows += [m, ~m]
    return torch.stack(rows[:k])


def model_seeds(gen: torch.Generator, k: int) -> list[int]:
    return [int(v) for v in torch.randint(0, 2**62, (k,), generator=gen)]


def _init_model(sizes: list[int], gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One model's layers, ``nn.Linear``'s default initialisation (uniform in +-1/sqrt(fan_in))."""
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(1, fan_out, generator=gen) * 2 - 1) * bound
        layers.append((w, b))
    return layers


def _adam(params: list[torch.Tensor], recipe: TrainingRecipe) -> torch.optim.Optimizer:
    """Adam with the fused kernel where torch has one (one kernel for all tensors), else ``foreach``."""
    try:
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, foreach=True)


def train_stacked(
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    n_classes: int,
    recipe: TrainingRecipe,
    gen: torch.Generator,
    device: torch.device | str = "cpu",
    *,
    seeds: Sequence[int] | None = None,
    pad_to: int | None = None,
    precision: Precision = "fp32",
) -> StackedMLP:
    """Train ``len(masks)`` MLPs of ``recipe`` at once; model ``k`` trains on ``x[masks[k]]``.

    Each step is a few batched matrix products over the model axis with the gradients written
    out by hand (softmax cross-entropy and ReLU backward, no autograd graph) and one fused Adam
    update for all models, so the per-step Python overhead is paid once for ``K`` models. The
    gradient of model ``k`` is the mean cross-entropy gradient of its own batch, exactly what it
    would get trained alone.

    Parameters
    ----------
    seeds:
        One seed per model. Model ``k``'s initialisation, padding and batch order come from a
        generator seeded with ``seeds[k]`` only, so a model is the same whichever models train
        beside it: a set trained in chunks (by an executor) equals the set trained at once.
        Default: drawn from ``gen``.
    pad_to:
        Every model's list of training indices is padded (with its own points, drawn at random)
        to this length, so all take the same steps per epoch; at least the largest mask. Pass
        the largest mask of the whole set when training a chunk of it. Default: the largest here.
    precision:
        ``"fp32"`` (default) or ``"bf16"``: the matrix products of the forward and backward
        passes in bfloat16 (mixed precision as in Micikevicius et al. 2018, arXiv:1710.03740),
        with float32 master weights, gradients, Adam state, softmax and loss gradient. On a CPU
        with AVX512-BF16 or AMX this is about 3-4x faster per product. ``"auto"``: bf16 where
        supported and faster (:func:`resolve_precision`), else fp32, as ``"bf16"`` also falls back.
    """
    device = torch.device(device)
    low = device.type == "cpu" and resolve_precision(precision) == "bf16"
    return train_stacked_as(x, y, masks, n_classes, recipe, gen, device, seeds=seeds, pad_to=pad_to, low=low)


def train_stacked_as(
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    n_classes: int,
    recipe: TrainingRecipe,
    gen: torch.Generator,
    device: torch.device,
    *,
    seeds: Sequence[int] | None,
    pad_to: int | None,
    low: bool,
) -> StackedMLP:
    """:func:`train_stacked` with the precision decided (``low``: bf16 products)."""
    mm = torch.bfloat16 if low else torch.float32
    xf, y = flat_rows(x).to(device), y.to(device)
    k = masks.shape[0]
    seeds = model_seeds(gen, k) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != k:
        raise InputValidationError("seeds", f"{k} seeds, one per mask", f"{len(seeds)} seeds")
    own = [torch.nonzero(m).squeeze(1) for m in masks.cpu()]
    if min(len(o) for o in own) == 0:
        raise InputValidationError("masks", "every model with at least one training point", "an empty mask")
    m = max(len(o) for o in own) if pad_to is None else int(pad_to)
    if m < max(len(o) for o in own):
        raise InputValidationError("pad_to", f"at least the largest mask ({max(len(o) for o in own)})", m)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    sizes = [xf.shape[1], *recipe.hidden, n_classes]
    per_model = [_init_model(sizes, g) for g in gens]
    weights = [torch.stack([pm[i][0] for pm in per_model]).to(device) for i in range(len(sizes) - 1)]
    biases = [torch.stack([pm[i][1] for pm in per_model]).to(device) for i in range(len(sizes) - 1)]
    # pad shorter index lists with some of their own points so every model takes the same steps
    table = torch.stack(
        [torch.cat([o, o[torch.randint(len(o), (m - len(o),), generator=g)]]) for o, g in zip(own, gens, strict=True)]
    )
    stacked = [*weights, *biases]
    for p in stacked:
        p.grad = torch.zeros_like(p)
    # Adam sees each model's slice as its own tensor (views into the stacked storage): the update
    # of a model is then computed exactly alike whatever the number of models beside it
    if low:
        # one fused Adam over whole stacked tensors where each model's slice fills whole SIMD vectors
        # (size a multiple of 64), per-model views for the rest: the update of an element is then
        # computed alike (no scalar tail) whatever the number of models beside it, with far fewer
        # tensors per step than one view per model and layer
        whole = [p for p in stacked if p[0].numel() % 64 == 0]
        parts = [p for p in stacked if p[0].numel() % 64 != 0]
        views = [p[j] for p in parts for j in range(k)]
        for v, (p, j) in zip(views, ((p, j) for p in parts for j in range(k)), strict=True):
            v.grad = p.grad[j]
        opt = _adam(whole + views, recipe)
    else:
        views = [p[j] for p in stacked for j in range(k)]
        for v, (p, j) in zip(views, ((p, j) for p in stacked for j in range(k)), strict=True):
            v.grad = p.grad[j]
        opt = _adam(views, recipe)
    onehot = F.one_hot(y, n_classes).to(xf.dtype)
    xm = xf.to(mm)
    last = len(weights) - 1
    for _ in range(recipe.epochs):
        order = torch.stack([row[torch.randperm(m, generator=g)] for row, g in zip(table, gens, strict=True)])
        order = order.to(device)
        for start in range(0, m, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]
            if low:
                _bf16_step(xm[idx], onehot[idx], weights, biases)
                opt.step()
                continue
            h = xf[idx]  # (K, B, d)
            acts = [h]
            for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
                h = torch.baddbmm(b, h, w)
                if i < last:
                    h = h.relu_()
                    acts.append(h)
            grad = torch.softmax(h, dim=-1).sub_(onehot[idx]).div_(idx.shape[1])  # d mean-CE / d logits
            for i in range(last, -1, -1):
                torch.bmm(acts[i].transpose(1, 2), grad, out=weights[i].grad)
                torch.sum(grad, dim=1, keepdim=True, out=biases[i].grad)
                if i > 0:
                    grad = torch.ops.aten.threshold_backward(torch.bmm(grad, weights[i].transpose(1, 2)), acts[i], 0)
            opt.step()
    for p in stacked:
        p.grad = None
    return StackedMLP(weights, biases)


def _bf16_step(h: torch.Tensor, target: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> None:
    """Gradients of one step with bfloat16 matrix products into the float32 ``.grad`` of every layer.

    ``h`` is the bf16 batch ``(K, B, d)``; hidden activations are kept in bf16, the logits, the
    softmax and the loss gradient in fp32; bias gradients are summed in fp32.
    """
    low = [w.to(torch.bfloat16) for w in weights]
    last = len(weights) - 1
    acts = [h]
    for i in range(last):
        h = torch.bmm(h, low[i]).add_(biases[i].to(torch.bfloat16)).relu_()  # faster than bf16 baddbmm here
        acts.append(h)
    logits = torch.bmm(h, low[last]).float().add_(biases[last])
    grad = torch.softmax(logits, dim=-1).sub_(target).div_(h.shape[1])  # d mean-CE / d logits, fp32
    g = grad.to(torch.bfloat16)
    for i in range(last, -1, -1):
        weights[i].grad.copy_(torch.bmm(acts[i].transpose(1, 2), g))
        torch.sum(grad, dim=1, keepdim=True, out=biases[i].grad)
        if i > 0:
            g = torch.ops.aten.threshold_backward(torch.bmm(g, low[i].transpose(1, 2)), acts[i], 0)
            grad = g.float()
