"""Shadow models for grey-box privacy attacks: many small MLPs trained at once, and cached.

A grey-box attacker knows the target's training recipe (:class:`TrainingRecipe`) and holds data
from the same distribution. Membership attacks such as LiRA (Carlini et al. 2022,
arXiv:2112.03570) and the shadow-model attack (Shokri et al. 2017, arXiv:1610.05820) train many
copies of the target's recipe on random halves of that data. Those trainings are the cost of the
attack, so :func:`train_stacked` trains ``K`` MLPs as one stacked model: every layer is a batched
matrix product (``torch.baddbmm``) over a leading model axis, gradients are written out by hand
(no autograd graph), each model sees its own random half of the data in its own batch order, and
one fused Adam step, being elementwise, updates each model exactly as a separate optimizer would.
:func:`shadow_models` splits the set in chunks trained stacked on an executor
(:mod:`aisec.core.executor`: in-process, a process pool, or Ray); every shadow has its own seed,
so the split changes nothing in the models. The result is cached content-addressed under
``$AISEC_CACHE/shadows/<sha256(recipe, data, seed, k)>.pt`` (tensors only, loaded with
``weights_only=True``), so a second assessment of the same target reuses them.

On a CPU with fast bfloat16 matrix products (AVX512-BF16 or AMX, measured once per process by
:func:`bf16_matmul_speedup`) the shadows train by default with bf16 products and fp32 master
weights, Adam state and softmax (``precision="auto"``; the precision is part of the cache key and
is recorded in the finding's evidence as ``shadow_precision``); elsewhere, and with
``precision="fp32"``, in float32 as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import check_config
from aisec.core.executor import Executor, LocalExecutor
from aisec.errors import ConfigError, InputValidationError

log = logging.getLogger(__name__)

CACHE_VERSION = 2

Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS = ("fp32", "bf16", "auto")


@cache
def bf16_matmul_speedup() -> float:
    """How many times faster a bfloat16 batched matmul runs than a float32 one on this CPU (measured once).

    0.0 when oneDNN has no bfloat16 kernels here (no AVX512-BF16 / AMX); the shape is that of a
    stacked layer of 8 models (batch 64, 256 wide), timed as the best of a few repetitions.
    """
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return 0.0
    except (AttributeError, RuntimeError):  # private API gone: measure anyway
        pass
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 64, 256, generator=gen), torch.randn(8, 256, 256, generator=gen)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, w = a.to(dtype), b.to(dtype)
        times = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(4):
                torch.bmm(x, w)
            times.append(time.perf_counter() - t)
        best[dtype] = min(times[2:])
    return best[torch.float32] / max(best[torch.bfloat16], 1e-12)


def resolve_precision(precision: str) -> str:
    """The precision shadows actually train in: ``"bf16"`` only where it is supported and faster.

    ``"auto"`` and ``"bf16"`` both fall back to ``"fp32"`` (with a logged note for ``"bf16"``)
    when bfloat16 matmuls are not at least 1.5x faster than float32 ones on this CPU.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not allowed; allowed: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return "fp32"
    speedup = bf16_matmul_speedup()
    if speedup >= 1.5:
        return "bf16"
    if precision == "bf16":
        log.info("bf16 shadows requested but bf16 matmul is %.2fx float32 here: training in fp32", speedup)
    return "fp32"


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingRecipe:
    """How the target was trained, as a grey-box attacker knows it.

    Attributes
    ----------
    hidden:
        Widths of the hidden ReLU layers of the MLP (inputs are flattened first).
    epochs:
        Passes over the training set.
    lr:
        Adam's learning rate.
    batch_size:
        Examples per step.
    weight_decay:
        Adam's L2 weight decay.
    architecture:
        Only ``"mlp"`` for now.
    """

    hidden: tuple[int, ...] = (64,)
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    architecture: str = "mlp"

    def __post_init__(self) -> None:
        check_config(self, "recipe", positive=("epochs", "lr", "batch_size"), integer=("epochs", "batch_size"))
        check_config(self, "recipe", non_negative=("weight_decay",))
        if self.architecture != "mlp":
            raise ConfigError(f"recipe.architecture: {self.architecture!r} is not allowed; allowed: mlp")
        hidden = tuple(self.hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ConfigError(f"recipe.hidden: expected positive integers, got {self.hidden!r}")
        object.__setattr__(self, "hidden", hidden)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(len(x), -1).float()


class StackedMLP:
    """``K`` MLPs of the same shape as stacked weights ``(K, fan_in, fan_out)`` and biases ``(K, 1, fan_out)``."""

    def __init__(self, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> None:
        self.weights = weights
        self.biases = biases

    @property
    def k(self) -> int:
        return self.weights[0].shape[0]

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
        h = _flat(x).unsqueeze(0).expand(self.k, -1, -1) if x.ndim != 3 or x.shape[0] != self.k else x
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


def _model_seeds(gen: torch.Generator, k: int) -> list[int]:
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
    return _train_stacked(x, y, masks, n_classes, recipe, gen, device, seeds=seeds, pad_to=pad_to, low=low)


def _train_stacked(
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
    xf, y = _flat(x).to(device), y.to(device)
    k = masks.shape[0]
    seeds = _model_seeds(gen, k) if seeds is None else [int(s) for s in seeds]
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


@dataclass(frozen=True, slots=True)
class ShadowChunk:
    """A picklable piece of a shadow set, for an executor: arrays, not tensors."""

    x: np.ndarray
    y: np.ndarray
    masks: np.ndarray
    n_classes: int
    recipe: TrainingRecipe
    seeds: tuple[int, ...]
    pad_to: int
    device: str = "cpu"
    precision: str = "fp32"
    """``"fp32"`` or ``"bf16"``, already resolved (:func:`resolve_precision`)."""


def train_chunk(chunk: ShadowChunk) -> tuple[dict[str, np.ndarray], float]:
    """Train one chunk stacked (:func:`train_stacked`): its state as arrays and its training seconds."""
    start = time.perf_counter()
    # the precision was decided once by the caller (shadow_models), so every worker trains alike
    model = _train_stacked(
        torch.from_numpy(chunk.x),
        torch.from_numpy(chunk.y),
        torch.from_numpy(chunk.masks),
        chunk.n_classes,
        chunk.recipe,
        torch.Generator(),
        torch.device(chunk.device),
        seeds=chunk.seeds,
        pad_to=chunk.pad_to,
        low=chunk.precision == "bf16",
    )
    return {key: t.numpy() for key, t in model.state().items()}, time.perf_counter() - start


def train_mlp(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, recipe: TrainingRecipe, seed: int, device: str = "cpu"
) -> nn.Sequential:
    """One MLP of ``recipe`` as a plain ``nn.Sequential`` (flatten first), trained the ordinary way.

    This is how a target is trained, and the one-after-another baseline of :func:`train_stacked`.
    """
    torch.manual_seed(seed)
    xf, y = _flat(x).to(device), y.to(device)
    sizes = [xf.shape[1], *recipe.hidden, n_classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    net = nn.Sequential(*layers).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    for _ in range(recipe.epochs):
        perm = torch.randperm(len(y), device=device)
        for start in range(0, len(y), recipe.batch_size):
            idx = perm[start : start + recipe.batch_size]
            loss = F.cross_entropy(net(xf[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


@dataclass(frozen=True, slots=True)
class ShadowSet:
    """Trained shadow models and which of the attacker's points each one trained on."""

    model: StackedMLP
    in_mask: torch.Tensor
    """``(K, N)`` bool: ``in_mask[k, i]`` when shadow ``k`` trained on point ``i``."""
    seconds_per_shadow: float
    """Training wall time divided by ``K`` (of the run that trained them, also when loaded from the cache)."""
    from_cache: bool
    key: str
    seconds_total: float = 0.0
    """Training wall time of the whole set (of the run that trained it)."""
    worker_seconds_per_shadow: float = 0.0
    """Seconds the workers spent training, summed over chunks, divided by ``K``."""
    executor: str = "local"
    """The executor that trained the set (of the run that trained it)."""
    chunks: int = 1
    """How many stacked pieces the set was trained in."""
    precision: str = "fp32"
    """``"fp32"`` or ``"bf16"``: the precision of the training's matrix products."""

    def cost(self) -> dict[str, float | int | str | bool]:
        """Metrics of the training cost, for a finding."""
        return {
            "shadow_seconds_total": self.seconds_total,
            "shadow_seconds_per_model": self.seconds_per_shadow,
            "shadow_worker_seconds_per_model": self.worker_seconds_per_shadow,
            "shadow_executor": self.executor,
            "shadow_chunks": self.chunks,
            "shadow_precision": self.precision,
            "shadow_cache_hit": self.from_cache,
        }


def cache_root() -> Path:
    """``$AISEC_CACHE`` (default ``~/.cache/aisec``)."""
    root = os.environ.get("AISEC_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "aisec"


def data_hash(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 of the attacker's data (values, shapes and dtypes)."""
    h = hashlib.sha256()
    for t in (x.detach().float().cpu().contiguous(), y.detach().long().cpu().contiguous()):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def shadow_key(
    recipe: TrainingRecipe,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    seed: int,
    k: int,
    precision: str = "fp32",
) -> str:
    """Content address of a shadow set: the recipe, the data, the seed, the count and the precision.

    ``precision`` is the one the set trains in (after :func:`resolve_precision`); fp32 keys are
    those of earlier versions, so fp32 caches stay valid.
    """
    fields = {
        "v": CACHE_VERSION,
        "recipe": dataclasses.asdict(recipe),
        "data": data_hash(x, y),
        "n_classes": n_classes,
        "seed": seed,
        "k": k,
    }
    if precision != "fp32":
        fields["precision"] = precision
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _split(k: int, chunks: int) -> list[range]:
    """``range(k)`` in ``chunks`` contiguous, nearly equal pieces (none empty)."""
    chunks = max(1, min(chunks, k))
    bounds = [round(i * k / chunks) for i in range(chunks + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def shadow_models(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    recipe: TrainingRecipe,
    k: int,
    seed: int,
    *,
    cache: bool = True,
    device: torch.device | str = "cpu",
    executor: Executor | None = None,
    chunks: int | None = None,
    precision: Precision = "auto",
) -> ShadowSet:
    """``k`` shadow MLPs, each on a random half of ``(x, y)``, trained batched or loaded from the cache.

    The ``k`` shadows are split in ``chunks`` pieces (default: one per worker of ``executor``),
    each trained stacked by :func:`train_chunk` on the executor (default: in this process). The
    masks and one seed per shadow are drawn from ``seed`` before the split and the steps per
    epoch are fixed for the whole set, so the models do not depend on the executor or the split,
    and neither does the cache key.

    ``precision`` (see :func:`train_stacked`) is resolved once here, for all chunks, and is part
    of the cache key. The default ``"auto"`` trains in bf16 on a CPU whose bfloat16 matmul is at
    least 1.5x faster than float32 (AVX512-BF16, AMX), else in fp32: on the privacy benchmark bf16
    shadows gave LiRA the same AUC and TPR at low FPR as fp32 ones (``benchmarks/README.md``).
    On CUDA devices shadows train in fp32.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputValidationError("k", "an integer >= 1", k)
    if len(y) < 2:
        raise InputValidationError("x", "at least 2 points to split in halves", f"{len(y)} points")
    device = torch.device(device)
    executor = executor if executor is not None else LocalExecutor()
    used = resolve_precision(precision) if device.type == "cpu" else "fp32"
    key = shadow_key(recipe, x, y, n_classes, seed, k, used)
    path = cache_root() / "shadows" / f"{key}.pt"
    if cache and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            log.info("shadow models loaded from %s", path)
            return ShadowSet(
                StackedMLP.from_state(state, device),
                state["in_mask"].bool(),
                float(state["seconds"]),
                True,
                key,
                seconds_total=float(state["seconds"]) * k,
                worker_seconds_per_shadow=float(state.get("worker_seconds", state["seconds"])),
                executor="cache",
                chunks=int(state.get("chunks", torch.tensor(1))),
                precision=used,
            )
        except (
            OSError,
            RuntimeError,
            KeyError,
            ValueError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:  # a broken cache file is retrained, not fatal
            log.warning("ignoring unreadable shadow cache %s: %s", path, exc)
    gen = torch.Generator().manual_seed(seed)
    masks = half_masks(len(y), k, gen)
    seeds = _model_seeds(gen, k)
    pad_to = int(masks.sum(1).max())
    xs, ys, ms = _flat(x).cpu().numpy(), y.detach().long().cpu().numpy(), masks.numpy()
    pieces = _split(k, chunks if chunks is not None else executor.workers)
    tasks = [
        ShadowChunk(
            xs, ys, ms[r.start : r.stop], n_classes, recipe, tuple(seeds[r.start : r.stop]), pad_to, str(device), used
        )
        for r in pieces
    ]
    start = time.perf_counter()
    done = executor.map(train_chunk, tasks)
    total = time.perf_counter() - start
    state = {name: torch.cat([torch.tensor(d[0][name]) for d in done]) for name in done[0][0]}
    model = StackedMLP.from_state(state, device)
    worker = sum(d[1] for d in done) / k
    out = ShadowSet(model, masks, total / k, False, key, total, worker, executor.name, len(pieces), used)
    log.info("%d shadows trained in %.1f s (%s, %d chunks, %s)", k, total, executor.name, len(pieces), used)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        extra = {
            "in_mask": masks,
            "seconds": torch.tensor(total / k),
            "worker_seconds": torch.tensor(worker),
            "chunks": torch.tensor(len(pieces)),
        }
        torch.save(model.state() | extra, tmp)
        tmp.replace(path)
    return out


def true_class_logit(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic: phi = log p_y - log sum_{c != y} p_c, in float64 (Carlini et al. 2022, Sec. 4.2)."""
    p = probs.double()
    idx = y.to(p.device).view(-1, 1)
    py = p.gather(1, idx).squeeze(1).clamp_min(1e-300)
    rest = p.scatter(1, idx, 0.0).sum(1).clamp_min(1e-300)
    return py.log() - rest.log()


def stacked_phi(model: StackedMLP, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``(K, N)`` statistic of every shadow on every point.

    Computed from float32 softmax probabilities, as a target's API returns them, so shadows and
    target saturate alike for very confident predictions.
    """
    out = []
    with torch.no_grad():
        for s in range(0, len(y), batch_size):
            p = torch.softmax(model.logits(x[s : s + batch_size].to(model.weights[0].device)), dim=-1)
            yy = y[s : s + batch_size]
            out.append(torch.stack([true_class_logit(pk, yy) for pk in p]).cpu())
    return torch.cat(out, dim=1).numpy() if out else np.zeros((model.k, 0))
