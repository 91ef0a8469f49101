"""Shared machinery of the model-stealing attacks: the thief's network, its training, the pool and
the assessor's fidelity measurement.

A thief is a small network chosen by input shape: a two-block CNN for images (C, H, W) with
H, W >= 4, else an MLP on the flattened input. Training takes soft targets (the victim's
probabilities, or one-hot labels when the API gives labels only) and, optionally, the unlabeled
rest of the attacker's pool with confident pseudo-labels under augmentation (FixMatch-style, Sohn
et al. 2020, arXiv:2001.07685).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aisec.core.goals import Capability, Knowledge
from aisec.data.dataset import Dataset
from aisec.errors import AccessDeniedError, InputValidationError
from aisec.targets.base import TargetView


class ThiefCNN(nn.Module):
    """conv16-conv32-pool-fc64-fc: the small image thief."""

    def __init__(self, channels: int, height: int, width: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * (height // 2) * (width // 2), 64), nn.ReLU(), nn.Linear(64, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_thief(input_shape: Sequence[int], n_classes: int, *, hidden: int = 64) -> nn.Module:
    """A fresh thief for inputs of ``input_shape``: a CNN for images, else an MLP."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3 and shape[1] >= 4 and shape[2] >= 4:
        return ThiefCNN(shape[0], shape[1], shape[2], n_classes)
    d = math.prod(shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_classes))  # fmt: skip


def augment(
    x: torch.Tensor, gen: torch.Generator, clip: tuple[float, float] | None, strength: float, shift: bool = False
) -> torch.Tensor:
    """A weak perturbation: Gaussian noise, and with ``shift`` image shifts of up to one pixel."""
    out = x
    if shift and x.ndim == 4 and x.shape[-1] >= 4 and strength > 0:
        dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
        out = torch.roll(out, shifts=(dy, dx), dims=(-2, -1))
    if strength > 0:
        span = (clip[1] - clip[0]) if clip is not None else float(x.std().clamp_min(1e-6))
        out = out + strength * span * torch.randn(out.shape, generator=gen).to(out)
    if clip is not None:
        out = out.clamp(*clip)
    return out


def train_thief(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    unlabeled: torch.Tensor | None = None,
    clip: tuple[float, float] | None = None,
    steps: int = 400,
    lr: float = 3e-3,
    batch_size: int = 64,
    threshold: float = 0.97,
    unlabeled_weight: float = 1.0,
    noise: float = 0.05,
    seed: int = 0,
) -> nn.Module:
    """Fit ``model`` to soft ``targets`` (rows on the simplex) on ``x``.

    With ``unlabeled``, each step also fits the thief's own confident predictions (max probability
    at least ``threshold``) on a weakly augmented pool batch to a second augmentation of it
    (pseudo-labels with consistency). Returns the model in eval mode.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    n = len(x)
    use_pool = unlabeled is not None and len(unlabeled) > 0 and unlabeled_weight > 0
    warmup = steps // 4
    order = torch.randperm(n, generator=gen)
    pos = 0
    model.train()
    for step in range(steps):
        if pos >= n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        xb = augment(x[idx], gen, clip, noise)
        loss = -(targets[idx] * F.log_softmax(model(xb), dim=1)).sum(1).mean()
        if use_pool and step >= warmup:
            assert unlabeled is not None
            uidx = torch.randint(len(unlabeled), (min(len(unlabeled), 2 * batch_size),), generator=gen)
            ub = unlabeled[uidx]
            model.eval()
            with torch.no_grad():
                p = F.softmax(model(augment(ub, gen, clip, noise / 2)), dim=1)
            model.train()
            conf, pseudo = p.max(1)
            mask = conf >= threshold
            if mask.any():
                logits_u = model(augment(ub[mask], gen, clip, 2 * noise))
                loss = loss + unlabeled_weight * mask.float().mean() * F.cross_entropy(logits_u, pseudo[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The thief's probabilities, in eval mode, batched."""
    model.eval()
    return torch.cat([F.softmax(model(x[i : i + batch]), dim=1) for i in range(0, len(x), batch)]) if len(x) else (
        torch.empty(0)
    )  # fmt: skip


def attacker_pool(view: TargetView, data: Dataset) -> torch.Tensor:
    """The grey-box attacker's data sample: the training split's *inputs* without their labels."""
    view.require(Capability.LABELS)
    if view.knowledge is Knowledge.BLACK_BOX:
        raise AccessDeniedError("a black-box attacker has no data sample (data-sample needs grey-box knowledge)")
    if not isinstance(data.x_train, torch.Tensor) or len(data.x_train) == 0:
        raise InputValidationError("data.x_train", "a non-empty tensor of inputs (the attacker's pool)", "none")
    return data.x_train.float().cpu()


def query_targets(view: TargetView, x: torch.Tensor) -> torch.Tensor:
    """Ask the victim about ``x``: its probabilities when the view gives them, else one-hot labels."""
    if Capability.PROBABILITIES in view.capabilities:
        p = view.predict_proba(x).float().cpu()
        p = p.clamp_min(0)
        return p / p.sum(1, keepdim=True).clamp_min(1e-12)  # top-k and rounded rows renormalised
    labels = view.predict(x).cpu()
    return F.one_hot(labels, view.n_classes).float()


def fidelity_and_accuracy(
    view: TargetView, model: nn.Module, data: Dataset, n_eval: int | None, seed: int
) -> tuple[float, float]:
    """The assessor's measurement: agreement with the victim's labels and accuracy on held-out data."""
    x_eval, y_eval = data.test_subset(n_eval, seed)
    assert isinstance(x_eval, torch.Tensor)
    victim = view.evaluation_view().predict(x_eval).cpu()
    pred = predict_proba(model, x_eval.float().cpu()).argmax(1)
    return (pred == victim).float().mean().item(), (pred == y_eval.cpu()).float().mean().item()


def checkpoints(total: int, rounds: int, first: int | None = None) -> list[int]:
    """Cumulative query counts at the end of each round (geometric-ish: the first round is the largest share)."""
    rounds = max(1, min(rounds, total))
    ends = np.linspace(0, total, rounds + 1)[1:].round().astype(int).tolist()
    if first is not None and rounds > 1:
        ends = [min(first, total), *[e for e in ends if e > first]]
    return sorted(set(int(e) for e in ends if e > 0))


def first_reaching(curve_q: list[int], curve_f: list[float], level: float) -> int | None:
    """Fewest queries on the curve at which fidelity reaches ``level``."""
    return next((q for q, f in zip(curve_q, curve_f, strict=True) if f >= level), None)


def kcenter(features: torch.Tensor, k: int, chosen: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-center selection of ``k`` rows of ``features``, far from ``chosen`` and from each other."""
    n = len(features)
    k = min(k, n)
    if chosen is not None and len(chosen):
        dist = torch.cdist(features, features[chosen]).min(1).values
    else:
        dist = torch.full((n,), float("inf"))
    picked: list[int] = []
    if not torch.isfinite(dist).any():
        first = int(torch.randint(n, (1,), generator=gen))
        picked.append(first)
        dist = torch.cdist(features, features[first : first + 1]).squeeze(1)
    while len(picked) < k:
        i = int(dist.argmax())
        picked.append(i)
        dist = torch.minimum(dist, torch.cdist(features, features[i : i + 1]).squeeze(1))
    return torch.tensor(picked, dtype=torch.long)
