"""Input limits: a request that breaks one is refused (413/422) before the model sees it.

Each refusal names its rule: ``max_body_bytes``, ``json``, ``schema``, ``max_batch``, ``shape``,
``dtype``, ``value_range``, ``finite``, ``max_text_length`` or ``model_input`` (the target's own
check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aisec.gateway.protocol import InferRequest
from aisec.gateway.settings import InputLimits

_FLOAT_TYPES = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


@dataclass
class InputRefused(Exception):
    """A broken input rule; ``status`` is 413 for size, 422 otherwise."""

    rule: str
    message: str
    status: int = 422

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class InputChecker:
    """Turns a parsed request into model inputs, enforcing :class:`InputLimits`."""

    def __init__(
        self,
        limits: InputLimits,
        *,
        text: bool,
        input_shape: tuple[int, ...] | None,
        clip: tuple[float, float] | None,
    ) -> None:
        self.limits = limits
        self.text = text
        self.input_shape = input_shape
        self.value_range = limits.value_range or clip

    def _batch(self, n: int) -> None:
        if n < 1:
            raise InputRefused("max_batch", "the batch is empty")
        if n > self.limits.max_batch:
            raise InputRefused("max_batch", f"batch of {n} inputs; at most {self.limits.max_batch} allowed")

    def _texts(self, items: list[Any]) -> list[str]:
        self._batch(len(items))
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InputRefused("dtype", f"inputs[{i}] is not a string")
            if len(t) > self.limits.max_text_length:
                raise InputRefused(
                    "max_text_length", f"inputs[{i}] has {len(t)} characters; at most {self.limits.max_text_length}"
                )
        return list(items)

    def _numbers(self, arr: np.ndarray) -> np.ndarray:
        self._batch(arr.shape[0] if arr.ndim else 0)
        if self.input_shape is not None and tuple(arr.shape[1:]) != self.input_shape:
            want = ", ".join(str(d) for d in self.input_shape)
            raise InputRefused("shape", f"shape {list(arr.shape)}; expected [n, {want}]")
        if arr.ndim < 2:
            raise InputRefused("shape", f"shape {list(arr.shape)}; expected a batch [n, ...]")
        if not np.isfinite(arr).all():
            raise InputRefused("finite", "NaN or infinite values")
        if self.value_range is not None:
            lo, hi = self.value_range
            if arr.min() < lo or arr.max() > hi:
                raise InputRefused("value_range", f"values in [{arr.min():.4g}, {arr.max():.4g}]; allowed [{lo}, {hi}]")
        return arr.astype(np.float32)

    def from_v2(self, req: InferRequest) -> np.ndarray | list[str]:
        inp = req.inputs[0]
        dtype = inp.datatype.upper()
        if dtype not in self.limits.dtypes or (dtype == "BYTES") != self.text:
            allowed = ["BYTES"] if self.text else [d for d in self.limits.dtypes if d != "BYTES"]
            raise InputRefused("dtype", f"datatype {inp.datatype!r}; allowed {allowed}")
        if any(d < 0 for d in inp.shape) or not inp.shape:
            raise InputRefused("shape", f"shape {inp.shape} is not a tensor shape")
        if inp.shape[0] > self.limits.max_batch:
            raise InputRefused("max_batch", f"batch of {inp.shape[0]} inputs; at most {self.limits.max_batch} allowed")
        if math.prod(inp.shape) != len(inp.data):
            raise InputRefused("shape", f"shape {inp.shape} needs {math.prod(inp.shape)} values, got {len(inp.data)}")
        if self.text:
            if len(inp.shape) != 1:
                raise InputRefused("shape", f"text inputs have shape [n], got {inp.shape}")
            return self._texts(inp.data)
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in inp.data):
            raise InputRefused("dtype", f"{dtype} data must be numbers")
        with np.errstate(over="ignore"):
            arr = np.asarray(inp.data, dtype=np.float64).astype(_FLOAT_TYPES[dtype]).astype(np.float64)
        return self._numbers(arr.reshape(inp.shape))

    def from_json(self, rows: list[Any]) -> np.ndarray | list[str]:
        if self.text:
            return self._texts(rows)
        self._batch(len(rows))
        try:
            arr = np.asarray(rows, dtype=object)
        except ValueError:
            raise InputRefused("shape", "rows of different lengths") from None
        if arr.dtype != object or arr.ndim < 1:
            raise InputRefused("shape", "expected rows of numbers")  # pragma: no cover
        flat = arr.reshape(-1)
        if any(isinstance(v, list | dict) for v in flat):
            raise InputRefused("shape", "rows of different shapes")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in flat):
            raise InputRefused("dtype", "inputs must be rows of numbers")
        return self._numbers(flat.astype(np.float64).reshape(arr.shape))


__all__ = ["InputChecker", "InputRefused"]
