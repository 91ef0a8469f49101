"""Shadow sets for grey-box privacy attacks: trained in chunks on an executor, and cached.

A grey-box attacker knows the target's training recipe and holds data from the same distribution.
Membership attacks such as LiRA (Carlini et al. 2022, arXiv:2112.03570) and the shadow-model attack
(Shokri et al. 2017, arXiv:1610.05820) train many copies of that recipe on random halves of the
data. :func:`shadow_models` splits the set in chunks, each trained as one stacked model
(:func:`aisec.attacks.privacy.stacked.train_stacked`) on an executor (:mod:`aisec.core.executor`:
in-process, a process pool, or Ray); every shadow has its own seed, so the split changes nothing in
the models. The result is cached content-addressed under
``$AISEC_CACHE/shadows/<sha256(recipe, data, seed, k)>.pt`` (tensors only, loaded with
``weights_only=True``), so a second assessment of the same target reuses them. The precision the
set trains in (:mod:`aisec.attacks.privacy.precision`: bf16 products where this CPU makes them
faster) is part of the cache key and is recorded in the finding's evidence as ``shadow_precision``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from aisec.attacks.privacy.precision import Precision, resolve_precision
from aisec.attacks.privacy.recipe import TrainingRecipe, flat_rows
from aisec.attacks.privacy.stacked import StackedMLP, half_masks, model_seeds, train_stacked_as
from aisec.core.executor import Executor, LocalExecutor
from aisec.core.files import cache_root, load_cached, store_cached
from aisec.errors import InputValidationError

log = logging.getLogger(__name__)

CACHE_VERSION = 2


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
    model = train_stacked_as(
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


class ShadowModels(Protocol):
    """What the attacks read from a set of shadows: ``k`` models' logits ``(K, N, C)`` on the same inputs.

    :class:`~aisec.attacks.privacy.stacked.StackedMLP` (the recipe's MLPs, trained stacked) and
    :class:`~aisec.attacks.privacy.recipe_shadows.RecipeShadows` (models of the target's own training process).
    """

    @property
    def k(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def logits(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True, slots=True)
class ShadowSet:
    """Trained shadow models and which of the attacker's points each one trained on."""

    model: ShadowModels
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
    """``"fp32"`` or ``"bf16"``: the precision of the training's matrix products (``"trainer"``: the target's own)."""

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


def shadow_halves(n: int, k: int, seed: int) -> tuple[torch.Tensor, list[int]]:
    """Which of ``n`` points each of ``k`` shadows trains on (``(K, N)`` complementary random halves) and one model
    seed per shadow, both drawn from ``seed``: the same for every way of training the shadows."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputValidationError("k", "an integer >= 1", k)
    if n < 2:
        raise InputValidationError("x", "at least 2 points to split in halves", f"{n} points")
    gen = torch.Generator().manual_seed(seed)
    return half_masks(n, k, gen), model_seeds(gen, k)


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
    masks, seeds = shadow_halves(len(y), k, seed)
    device = torch.device(device)
    executor = executor if executor is not None else LocalExecutor()
    used = resolve_precision(precision) if device.type == "cpu" else "fp32"
    key = shadow_key(recipe, x, y, n_classes, seed, k, used)
    path = cache_root() / "shadows" / f"{key}.pt"
    if cache:

        def parse(state: dict[str, torch.Tensor]) -> ShadowSet:
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

        cached = load_cached(path, parse, "shadow")  # a broken cache file is retrained, not fatal
        if cached is not None:
            log.info("shadow models loaded from %s", path)
            return cached
    pad_to = int(masks.sum(1).max())
    xs, ys, ms = flat_rows(x).cpu().numpy(), y.detach().long().cpu().numpy(), masks.numpy()
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
        extra = {
            "in_mask": masks,
            "seconds": torch.tensor(total / k),
            "worker_seconds": torch.tensor(worker),
            "chunks": torch.tensor(len(pieces)),
        }
        store_cached(path, lambda tmp: torch.save(model.state() | extra, tmp), "shadow")
    return out


def true_class_logit(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic: phi = log p_y - log sum_{c != y} p_c, in float64 (Carlini et al. 2022, Sec. 4.2)."""
    p = probs.double()
    idx = y.to(p.device).view(-1, 1)
    py = p.gather(1, idx).squeeze(1).clamp_min(1e-300)
    rest = p.scatter(1, idx, 0.0).sum(1).clamp_min(1e-300)
    return py.log() - rest.log()


def stacked_phi(model: ShadowModels, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """``(K, N)`` statistic of every shadow on every point.

    Computed from float32 softmax probabilities, as a target's API returns them, so shadows and
    target saturate alike for very confident predictions.
    """
    out = []
    with torch.no_grad():
        for s in range(0, len(y), batch_size):
            p = torch.softmax(model.logits(x[s : s + batch_size].to(model.device)), dim=-1)
            yy = y[s : s + batch_size]
            out.append(torch.stack([true_class_logit(pk, yy) for pk in p]).cpu())
    return torch.cat(out, dim=1).numpy() if out else np.zeros((model.k, 0))
