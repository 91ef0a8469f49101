"""bfloat16 matrix products for stacked shadow training, where this CPU makes them faster.

On a CPU with fast bfloat16 matrix products (AVX512-BF16 or AMX, measured once per process by
:func:`bf16_matmul_speedup`) shadow models train by default with bf16 products and fp32 master
weights, Adam state and softmax (mixed precision as in Micikevicius et al. 2018,
arXiv:1710.03740); :func:`resolve_precision` turns a requested precision into the one used.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Literal

import torch

from aisec.core.configurable import check_choice

log = logging.getLogger(__name__)

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
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp32":
        return "fp32"
    speedup = bf16_matmul_speedup()
    if speedup >= 1.5:
        return "bf16"
    if precision == "bf16":
        log.info("bf16 shadows requested but bf16 matmul is %.2fx float32 here: training in fp32", speedup)
    return "fp32"
