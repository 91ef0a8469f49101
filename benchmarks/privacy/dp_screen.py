"""Screen DP-SGD variants on centred digits: low-rank and standardised layers, noise schedules, Adam betas, averaging, input maps.

The table "Screened on centred inputs" in docs/privacy.md. Same protocol as ``dp.py`` (digits / 16, the 898
members of ``load_digits(test_size=0.5, seed=0)``, MLP 64-256-256-10, delta 1e-5, epsilon 3, PRV unless a row
says RDP), on inputs centred on the members' *exact* mean (charged nothing: an upper bound for
``center="dp-mean"``, which docs/privacy.md measured equal to it, 0.925 both). The base recipe is ``dp-sgd``'s
defaults: Adam 0.02, expected batch 128, 30 epochs, clip 1, the 256x256 layer frozen at its random
initialisation. Each cell is the mean test accuracy over training seeds 0-2; a range is the worst-best over a
row's settings.

Per-example gradients use the ghost-norm identity of a linear map ``z = a W^T + b``: the example's gradient is
``g a^T`` with squared norm ``|g|^2 |a|^2`` (plus ``|g|^2`` for the bias), summed over every trained map, so no
per-example gradient is materialised. A low-rank update of the first layer (LoRA, Hu et al. 2021,
arXiv:2106.09685) is two such maps, ``u = x V^T`` and ``z = x W0^T + b + u U^T`` with ``W0`` frozen at its random
initialisation, ``U`` starting at zero; after training ``W0 + U V`` is the first layer, so the architecture is
unchanged. Weight standardisation (Qiao et al. 2019, arXiv:1903.10520) trains ``V`` and uses rows ``W_r = k_r c_r``,
``c_r = v_r - mean(v_r)``, ``k_r = gain / |c_r|``: the gradient for ``v_r`` is ``k_r (I - u_r u_r^T) g_r (a - mean(a))``
with ``u_r = c_r / |c_r|``, whose per-example norm the same identity gives row by row (checked against ``torch.func``
per-example gradients: equal accuracies to four digits). A noise schedule multiplies the noise by ``ratio ** (k / 9)`` in ten equal chunks of steps ``k = 0..9``;
the scale is bisected so that the RDP accountant (Mironov 2017) spends epsilon 3 over the ten mechanisms.

Run::

    benchmarks/.venv/bin/python benchmarks/privacy/dp_screen.py

About 10 minutes on one thread; prints a Markdown table, writes nothing.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from aisec.data import load_digits
from aisec.defenses.training import dp_functional as fx

DELTA = 1e-5
EPS = 3.0
SIZES = (64, 256, 256, 10)
CHUNKS = 10


@dataclass(frozen=True)
class Recipe:
    act: str = "relu"
    lr: float = 0.02
    batch: int = 128
    epochs: int = 30
    clip: float = 1.0
    lora: int = 0
    accountant: str = "prv"
    ratio: float = 1.0  # noise of the last chunk of steps / noise of the first
    beta1: float = 0.9
    beta2: float = 0.999
    tail: float = 0.0  # average the iterates of this last share of steps
    ema: float = 0.0
    scale: float = 1.0  # inputs times this
    blur: float = 0.0  # inputs through (1 - blur) I + blur G, G a Gaussian blur of width 1 pixel (< 0 sharpens)
    ws: bool = False  # weight standardisation of the first layer


@functools.cache
def _members() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = load_digits(test_size=0.5, seed=0)
    xtr = data.x_train.reshape(len(data.y_train), -1).float()
    xte = data.x_test.reshape(len(data.y_test), -1).float()
    mu = xtr.mean(0)
    return xtr - mu, data.y_train.long(), xte - mu, data.y_test.long()


def chunk_sizes(steps: int) -> list[int]:
    """Steps per chunk of the noise schedule: ``CHUNKS`` chunks, the first ``steps % CHUNKS`` one step longer."""
    return [steps // CHUNKS + (k < steps % CHUNKS) for k in range(CHUNKS)]


@functools.cache
def noise_scale(rate: float, steps: int, accountant: str, ratio: float) -> float:
    """The noise multiplier of the first chunk of steps that spends ``EPS`` (all chunks equal when ratio is 1)."""
    if ratio == 1.0:
        return fx.noise_for(EPS, DELTA, rate, steps, accountant)
    sizes = chunk_sizes(steps)
    lo, hi = 0.3, 50.0
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        history = [(mid * ratio ** (k / (CHUNKS - 1)), rate, m) for k, m in enumerate(sizes)]
        lo, hi = (lo, mid) if fx.epsilon_of(history, DELTA, accountant) < EPS else (mid, hi)
    return hi


def input_map(r: Recipe) -> torch.Tensor:
    """The fixed linear map applied to the centred inputs (foldable into the first layer's weights)."""
    idx = torch.arange(8.0)
    g = torch.exp(-((idx[:, None] - idx[None, :]) ** 2) / 2.0)
    g = g / g.sum(1, keepdim=True)
    return r.scale * ((1 - r.blur) * torch.eye(64) + r.blur * torch.kron(g, g))


def standardised(v: torch.Tensor, gain: float) -> torch.Tensor:
    """Rows of ``v`` centred and scaled to norm ``gain`` (weight standardisation, Qiao et al. 2019, arXiv:1903.10520)."""
    c = v - v.mean(1, keepdim=True)
    return gain * c / c.norm(dim=1, keepdim=True)


def _act(r: Recipe, z: torch.Tensor) -> torch.Tensor:
    return F.relu(z) if r.act == "relu" else torch.tanh(z)


def run(r: Recipe, seed: int) -> float:
    """Train one DP model with recipe ``r``; returns its test accuracy."""
    x, y, xte, yte = _members()
    if r.scale != 1.0 or r.blur:
        m = input_map(r)
        x, xte = x @ m.T, xte @ m.T
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in itertools.pairwise(SIZES)]
    ws = [lin.weight.detach().clone() for lin in layers]
    bs = [lin.bias.detach().clone() for lin in layers]
    v = torch.randn(r.lora, SIZES[0], generator=gen) / math.sqrt(SIZES[0])
    u = torch.zeros(SIZES[1], r.lora)
    gain = float(ws[0].norm(dim=1).mean())  # the standardised rows keep the initial rows' mean norm
    params = ([u, v] if r.lora else [ws[0]]) + [bs[0], ws[2], bs[2]]  # the 256x256 layer stays frozen
    for t in params:
        t.requires_grad_(True)
    n = len(y)
    rate = r.batch / n
    steps = max(1, round(r.epochs / rate))
    sigma0 = noise_scale(rate, steps, r.accountant, r.ratio)
    chunk = [k for k, m in enumerate(chunk_sizes(steps)) for _ in range(m)]  # as the accountant charges them
    opt = torch.optim.Adam(params, lr=r.lr, betas=(r.beta1, r.beta2))
    avg = [t.detach().clone() for t in params]
    tail_start = int((1 - r.tail) * steps)
    for step in range(steps):
        pick = torch.rand(n, generator=gen) < rate
        xb, yb = x[pick], y[pick]
        if not len(yb):
            continue
        maps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] = []  # (W, a, z, b)
        h = xb
        for i in range(len(ws)):
            if i == 0 and r.lora:
                low = h @ v.T
                z = h @ ws[0].T + bs[0] + low @ u.T
                maps += [(u, low, z, bs[0]), (v, h, low, None)]
            else:
                w = standardised(ws[0].detach(), gain) if i == 0 and r.ws else ws[i]
                z = h @ w.T + bs[i]
                maps.append((ws[i], h, z, bs[i]))
            h = _act(r, z) if i < len(ws) - 1 else z
        live = [m for m in maps if m[0].requires_grad]
        outs = list({id(m[2]): m[2] for m in live}.values())
        grads_z = dict(
            zip(map(id, outs), torch.autograd.grad(F.cross_entropy(h, yb, reduction="sum"), outs), strict=True)
        )
        sq = torch.zeros(len(yb))
        for w, a, z, b in live:
            g2 = grads_z[id(z)].pow(2).sum(1)
            if r.ws and w is ws[0]:  # d W / d v_r = k_r (I - u_r u_r^T)(I - 11^T / d), u_r the unit centred row
                k, unit, centred = _ws_parts(w, a, gain)
                along = centred @ unit.T
                rows = grads_z[id(z)].pow(2) * k.pow(2) * (centred.pow(2).sum(1, keepdim=True) - along.pow(2))
                sq = sq + rows.sum(1) + g2
            else:
                sq = sq + g2 * a.detach().pow(2).sum(1) + (g2 if b is not None else 0.0)
        factor = (r.clip / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        summed: dict[int, torch.Tensor] = {}
        for w, a, z, b in live:
            g = grads_z[id(z)] * factor[:, None]
            if r.ws and w is ws[0]:
                k, unit, centred = _ws_parts(w, a, gain)
                full = g.T @ centred
                summed[id(w)] = k[:, None] * (full - (full * unit).sum(1, keepdim=True) * unit)
            else:
                summed[id(w)] = g.T @ a.detach()
            if b is not None:
                summed[id(b)] = g.sum(0)
        sigma = sigma0 * r.ratio ** (chunk[step] / (CHUNKS - 1))
        with torch.no_grad():
            for t in params:
                t.grad = (summed[id(t)] + torch.randn(t.shape, generator=gen) * sigma * r.clip) / r.batch
            opt.step()
            for a, t in zip(avg, params, strict=True):
                if r.ema:
                    a.mul_(r.ema).add_(t, alpha=1 - r.ema)
                elif r.tail and step >= tail_start:
                    k = step - tail_start
                    a.mul_(k / (k + 1)).add_(t, alpha=1 / (k + 1))
    with torch.no_grad():
        if r.ema or r.tail:
            for a, t in zip(avg, params, strict=True):
                t.copy_(a)
        first = ws[0] + u @ v if r.lora else standardised(ws[0], gain) if r.ws else ws[0]
        h = xte
        for i, (w, b) in enumerate(zip([first, *ws[1:]], bs, strict=True)):
            h = h @ w.T + b
            h = _act(r, h) if i < len(ws) - 1 else h
        return float((h.argmax(1) == yte).float().mean())


def _ws_parts(v: torch.Tensor, a: torch.Tensor, gain: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For a standardised layer: each row's scale ``gain / |c_r|``, its unit centred row, and the centred inputs."""
    c = v.detach() - v.detach().mean(1, keepdim=True)
    norm = c.norm(dim=1)
    a = a.detach()
    return gain / norm, c / norm[:, None], a - a.mean(1, keepdim=True)


def mean(r: Recipe, seeds: range = range(3)) -> float:
    return sum(run(r, s) for s in seeds) / len(seeds)


ROWS: list[tuple[str, list[Recipe]]] = [
    ("base recipe (`dp-sgd` defaults, centred)", [Recipe()]),
    (
        "LoRA rank 8, 16, 32 on the first layer, lr 0.01-0.02",
        [Recipe(lora=k, lr=lr) for k in (8, 16, 32) for lr in (0.01, 0.02)],
    ),
    ("base recipe, RDP accountant", [Recipe(accountant="rdp")]),
    ("noise schedule, last / first = 0.5, 0.7 (RDP)", [Recipe(accountant="rdp", ratio=q) for q in (0.5, 0.7)]),
    ("noise schedule, last / first = 1.4, 2 (RDP)", [Recipe(accountant="rdp", ratio=q) for q in (1.4, 2.0)]),
    ("Adam beta1 0.95, 0.98", [Recipe(beta1=b) for b in (0.95, 0.98)]),
    ("Adam beta2 0.99", [Recipe(beta2=0.99)]),
    ("average of the last 30%, 50% of iterates", [Recipe(tail=t) for t in (0.3, 0.5)]),
    ("EMA 0.99, 0.995", [Recipe(ema=e) for e in (0.99, 0.995)]),
    ("weight standardisation of the first layer, lr 0.01-0.05", [Recipe(ws=True, lr=lr) for lr in (0.01, 0.02, 0.05)]),
    ("inputs times 0.5, 2, 3 (folds into the first layer)", [Recipe(scale=a) for a in (0.5, 2.0, 3.0)]),
    ("inputs blurred, mix 0.5, 1 (a fixed linear map, folds likewise)", [Recipe(blur=b) for b in (0.5, 1.0)]),
    ("inputs sharpened, mix -0.5, -1", [Recipe(blur=b) for b in (-0.5, -1.0)]),
    (
        "batch 32, 64; 45, 60, 90 epochs; lr 0.005-0.02",
        [Recipe(batch=b, epochs=e, lr=lr) for b in (32, 64) for e in (45, 60, 90) for lr in (0.005, 0.01, 0.02)],
    ),
]


def main() -> None:
    torch.set_num_threads(1)
    print("| variant (epsilon 3, seeds 0-2) | ReLU | tanh |")
    print("|---|---:|---:|")
    best: dict[str, tuple[float, Recipe]] = {}
    for row, recipes in ROWS:
        cells = []
        for act in ("relu", "tanh"):
            scores = [(mean(replace(r, act=act)), replace(r, act=act)) for r in recipes]
            lo, hi = min(s for s, _ in scores), max(scores, key=lambda sr: sr[0])
            cells.append(f"{hi[0]:.3f}" if len(scores) == 1 else f"{lo:.3f}-{hi[0]:.3f}")
            if row.startswith("batch"):
                best[act] = hi
        print(f"| {row} | {' | '.join(cells)} |", flush=True)
    for act, (score, r) in best.items():
        held = mean(r, range(3, 9))
        base = mean(Recipe(act=act), range(3, 9))
        print(f"{act}: best batch setting {r} at {score:.3f} on seeds 0-2; seeds 3-8: {held:.3f} (base {base:.3f})")


if __name__ == "__main__":
    main()
