"""Shadow models for grey-box privacy attacks: many small MLPs trained at once, and cached.

A grey-box attacker knows the target's training recipe (:class:`TrainingRecipe`) and holds data
from the same distribution. Membership attacks such as LiRA (Carlini et al. 2022,
arXiv:2112.03570) and the shadow-model attack (Shokri et al. 2017, arXiv:1610.05820) train many
copies of the target's recipe on random halves of that data. Those trainings are the cost of the
attack, so :func:`train_stacked` trains ``K`` MLPs as one stacked model: every layer is a batched
matrix product (``torch.baddbmm``) over a leading model axis, each model sees its own random half
of the data in its own batch order, and Adam, being elementwise, updates each model exactly as a
separate optimizer would. :func:`shadow_models` caches the result content-addressed under
``$AISEC_CACHE/shadows/<sha256(recipe, data, seed, k)>.pt`` (tensors only, loaded with
``weights_only=True``), so a second assessment of the same target reuses them.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import check_config
from aisec.errors import ConfigError, InputValidationError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


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
        n = sum(1 for key in state if key.startswith("w"))
        return cls([state[f"w{i}"].to(device) for i in range(n)], [state[f"b{i}"].to(device) for i in range(n)])


def half_masks(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """``(K, N)`` training masks: pairs of complementary random halves, so each point is in K/2 models (K even)."""
    rows = []
    for _ in range((k + 1) // 2):
        m = torch.zeros(n, dtype=torch.bool)
        m[torch.randperm(n, generator=gen)[: n // 2]] = True
        rows += [m, ~m]
    return torch.stack(rows[:k])


def train_stacked(
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor,
    n_classes: int,
    recipe: TrainingRecipe,
    gen: torch.Generator,
    device: torch.device | str = "cpu",
) -> StackedMLP:
    """Train ``len(masks)`` MLPs of ``recipe`` at once; model ``k`` trains on ``x[masks[k]]``."""
    device = torch.device(device)
    xf, y = _flat(x).to(device), y.to(device)
    k = masks.shape[0]
    sizes = [xf.shape[1], *recipe.hidden, n_classes]
    model = StackedMLP.init(k, sizes, gen, device)
    params = [p.requires_grad_() for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    own = [torch.nonzero(m).squeeze(1) for m in masks]
    m = max(len(o) for o in own)
    if min(len(o) for o in own) == 0:
        raise InputValidationError("masks", "every model with at least one training point", "an empty mask")
    # pad shorter index lists with one of their own points so every model takes the same steps
    table = torch.stack([torch.cat([o, o[torch.randint(len(o), (m - len(o),), generator=gen)]]) for o in own])
    for _ in range(recipe.epochs):
        order = table.gather(1, torch.argsort(torch.rand(k, m, generator=gen), dim=1)).to(device)
        for start in range(0, m, recipe.batch_size):
            idx = order[:, start : start + recipe.batch_size]
            out = model.logits(xf[idx])
            loss = F.cross_entropy(out.reshape(-1, n_classes), y[idx].reshape(-1)) * k  # per-model mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p in params:
        p.requires_grad_(False)
    return model


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
    """Training time divided by ``K`` (of the run that trained them, also when loaded from the cache)."""
    from_cache: bool
    key: str


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


def shadow_key(recipe: TrainingRecipe, x: torch.Tensor, y: torch.Tensor, n_classes: int, seed: int, k: int) -> str:
    """Content address of a shadow set: the recipe, the data, the seed and the count."""
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "recipe": dataclasses.asdict(recipe),
            "data": data_hash(x, y),
            "n_classes": n_classes,
            "seed": seed,
            "k": k,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


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
) -> ShadowSet:
    """``k`` shadow MLPs, each on a random half of ``(x, y)``, trained batched or loaded from the cache."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputValidationError("k", "an integer >= 1", k)
    if len(y) < 2:
        raise InputValidationError("x", "at least 2 points to split in halves", f"{len(y)} points")
    device = torch.device(device)
    key = shadow_key(recipe, x, y, n_classes, seed, k)
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
    start = time.perf_counter()
    model = train_stacked(x, y, masks, n_classes, recipe, gen, device)
    per_shadow = (time.perf_counter() - start) / k
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(model.state() | {"in_mask": masks, "seconds": torch.tensor(per_shadow)}, tmp)
        tmp.replace(path)
    return ShadowSet(model, masks, per_shadow, False, key)


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
