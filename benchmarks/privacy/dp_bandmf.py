"""Would correlated noise help the DP-SGD defaults? Banded matrix factorisation, amplified, at epsilon 3.

The matrix-factorisation mechanism (Denisov et al. 2022, arXiv:2202.08312) releases the gradients' prefix sums
``A G`` (what SGD's iterates are made of) as ``B (C G + Z)`` with ``A = B C``: the noise in the prefix sums is
``A C^-1 Z`` instead of DP-SGD's ``A Z``. With a lower-triangular *banded* ``C`` of ``b`` bands and columns of unit
norm, and "b-min-sep" cyclic Poisson sampling (the examples split into ``b`` fixed groups, group ``t mod b`` Poisson
sampled at rate ``b q`` at step ``t``), one example's participations touch disjoint column supports, and the
mechanism has the privacy of DP-SGD run for ``ceil(T / b)`` steps at sample rate ``b q`` (Choquette-Choo et al. 2023,
(Amplified) Banded Matrix Factorization, arXiv:2306.08153; Toeplitz bands as in McKenna 2024, arXiv:2405.15913).

For the defaults' schedule on the digits protocol (898 members, expected batch 128: q = 0.143, T = 210 steps,
epsilon 3, delta 1e-5) this script finds the ``b`` Toeplitz coefficients that minimise ``||A C^-1||_F^2`` (Adam on
the normalised coefficients), for two workloads: prefix sums (SGD) and an exponential moving average with decay 0.9
(momentum's view of the gradients). The noise multiplier each ``b`` needs comes from Opacus's PRV accountant. The
figure of merit is the root of the workload error times the noise multiplier, relative to DP-SGD's (``b = 1``):
below 1, correlated noise would put less noise into what the optimiser uses. Bands stop at 7: beyond, ``b q > 1``
and a group of ``898 / b`` examples cannot fill the batch of 128.

Run::

    benchmarks/.venv/bin/python benchmarks/privacy/dp_bandmf.py

About a minute; prints a Markdown table, writes nothing.
"""

from __future__ import annotations

import math

import torch

from aisec.defenses.training import dp_functional as fx

EPS, DELTA = 3.0, 1e-5
RATE = 128 / 898
STEPS = round(30 / RATE)
BANDS = (1, 2, 3, 4, 5, 6, 7)  # b q <= 1: every group can still give the expected batch of 128


def workload(kind: str, steps: int) -> torch.Tensor:
    """Prefix sums (``"prefix"``) or an exponential moving average of decay 0.9 (``"momentum"``)."""
    if kind == "prefix":
        return torch.tril(torch.ones(steps, steps, dtype=torch.float64))
    i = torch.arange(steps, dtype=torch.float64)
    return torch.tril(0.1 * 0.9 ** (i[:, None] - i[None, :]))


def banded(coef: torch.Tensor, steps: int) -> torch.Tensor:
    """The lower-triangular Toeplitz matrix with ``coef[k]`` on the ``k``-th subdiagonal."""
    return sum(torch.diag(coef[k].expand(steps - k), -k) for k in range(len(coef)))


def error(a: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """``||A C^-1||_F^2`` for the banded ``C`` of ``coef`` (normalised to unit column norm)."""
    c = banded(coef / coef.norm(), len(a))
    return torch.linalg.solve_triangular(c, a, upper=False, left=False).pow(2).sum()


def best_coefficients(a: torch.Tensor, bands: int, iters: int = 1500) -> torch.Tensor:
    theta = torch.zeros(bands, dtype=torch.float64)
    theta[0] = 1.0
    if bands == 1:
        return theta
    theta.requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=0.01)
    for _ in range(iters):
        opt.zero_grad()
        error(a, theta).backward()
        opt.step()
    return (theta / theta.norm()).detach()


def noise_multiplier(bands: int) -> float:
    return fx.noise_for(EPS, DELTA, min(1.0, bands * RATE), math.ceil(STEPS / bands), "prv")


def main() -> None:
    sigmas = {b: noise_multiplier(b) for b in BANDS}
    print(f"T = {STEPS} steps at rate {RATE:.3f}, epsilon {EPS:g}, delta {DELTA:g} (PRV)")
    print(
        "| bands b | noise multiplier | error / DP-SGD's, prefix sums | momentum 0.9 | noise in prefix sums | in momentum |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    base = {k: float(error(workload(k, STEPS), torch.ones(1, dtype=torch.float64))) for k in ("prefix", "momentum")}
    for b in BANDS:
        ratios = {}
        for kind in ("prefix", "momentum"):
            a = workload(kind, STEPS)
            ratios[kind] = float(error(a, best_coefficients(a, b))) / base[kind]
        rel = {k: sigmas[b] / sigmas[1] * math.sqrt(r) for k, r in ratios.items()}
        print(
            f"| {b} | {sigmas[b]:.2f} | {ratios['prefix']:.3f} | {ratios['momentum']:.3f} | "
            f"{rel['prefix']:.3f} | {rel['momentum']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
