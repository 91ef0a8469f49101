"""ONNX targets: a model exported to ONNX, run with onnxruntime on the CPU.

An ONNX graph gives no gradients to aisec (it is not a torch module), so an ONNX target answers
queries only: labels and probabilities. ``onnxruntime`` is an optional dependency
(``pip install "aisec[onnx]"``), imported when a target is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from aisec.core.configurable import check_choice
from aisec.core.goals import Modality
from aisec.errors import ConfigError, InputValidationError, MissingDependencyError
from aisec.targets.base import Inputs, Target

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("onnxruntime", "onnx") from None
    return onnxruntime


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__


def load_onnx_session(source: str | Path | bytes, *, providers: Sequence[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for a file or serialized model; ConfigError if it is not ONNX."""
    ort = _onnxruntime()
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"target.path: no such file: {path}")
        source, where = str(path), str(path)
    else:
        where = "the serialized model"
    try:
        return ort.InferenceSession(source, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # onnxruntime raises its own untyped errors (InvalidProtobuf, Fail, ...)
        raise ConfigError(f"target.path: {where} is not a valid ONNX model: {_first_line(exc)}") from None


class OnnxTarget(Target):
    """A classifier in ONNX format, run with onnxruntime.

    The graph's first input takes the batch; the answer is its first output that is a
    floating-point tensor of rank 2 (``(N, n_classes)``), else its first output. A graph whose
    batch dimension is fixed is fed in batches of that size (the last one padded).

    Parameters
    ----------
    session_or_path:
        An ``onnxruntime.InferenceSession``, a path to an ``.onnx`` file, or the model's bytes
        (anything with ``SerializeToString``, like an ``onnx.ModelProto``, is serialized first).
    modality:
        ``"image"`` or ``"tabular"``; text is not supported (tokenizers are rarely in the graph).
    input_shape:
        Shape of one input, e.g. ``(30,)``; checked against the graph where it is fixed.
    n_classes:
        Number of classes; read from the graph, or from one pass on zeros, when omitted.
    clip:
        Valid input range.
    outputs:
        Whether the graph returns ``"logits"`` (softmax is applied) or ``"probabilities"``.
    batch_size:
        Inputs per run.
    name:
        Name in reports.
    providers:
        onnxruntime execution providers; the CPU by default.
    """

    kind: ClassVar[str] = "onnx"

    def __init__(
        self,
        session_or_path: Any,
        *,
        modality: Modality | str,
        input_shape: Sequence[int],
        n_classes: int | None = None,
        clip: tuple[float, float] | None = None,
        outputs: Literal["logits", "probabilities"] = "logits",
        batch_size: int = 1024,
        name: str = "onnx-model",
        providers: Sequence[str] | None = None,
    ) -> None:
        if Modality.parse(modality, field="modality") is Modality.TEXT:
            raise ConfigError("modality: an onnx target takes numeric inputs; text is not supported")
        check_choice("outputs", outputs, ("logits", "probabilities"))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputValidationError("batch_size", "an integer >= 1", batch_size)
        if input_shape is None:
            raise ConfigError("input_shape: an onnx target needs the shape of one input")
        ort = _onnxruntime()
        if isinstance(session_or_path, ort.InferenceSession):
            session = session_or_path
        else:
            if hasattr(session_or_path, "SerializeToString"):
                session_or_path = session_or_path.SerializeToString()
            if not isinstance(session_or_path, str | Path | bytes):
                raise InputValidationError(
                    "session_or_path",
                    "an onnxruntime.InferenceSession, a path or serialized ONNX bytes",
                    type(session_or_path).__name__,
                )
            session = load_onnx_session(session_or_path, providers=providers)
        self.session = session
        self.outputs = outputs
        self.batch_size = batch_size
        graph_in = session.get_inputs()[0]
        self._input_name = graph_in.name
        self._input_dtype = _NUMPY_TYPES.get(graph_in.type)
        if self._input_dtype is None:
            raise ConfigError(
                f"target.path: the graph's input {graph_in.name!r} is {graph_in.type}, not a float tensor"
            )
        dims = list(graph_in.shape)
        shape = tuple(int(d) for d in input_shape)
        fixed = [(i, d) for i, d in enumerate(dims[1:]) if isinstance(d, int)]
        if len(dims) != len(shape) + 1 or any(shape[i] != d for i, d in fixed):
            raise ConfigError(f"input_shape: {list(shape)} does not fit the graph's input shape {dims}")
        self._fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        graph_outs = session.get_outputs()
        chosen = next(
            (o for o in graph_outs if o.type in _NUMPY_TYPES and (not o.shape or len(o.shape) == 2)), graph_outs[0]
        )
        self._output_name = chosen.name
        last = chosen.shape[-1] if chosen.shape else None
        if n_classes is not None and isinstance(last, int) and last != n_classes:
            raise ConfigError(f"n_classes: {n_classes} does not fit the graph's output shape {list(chosen.shape)}")
        if n_classes is None:
            if isinstance(last, int) and last > 0:
                n_classes = last
            else:
                n_classes = int(self._run(np.zeros((1, *shape), dtype=self._input_dtype)).shape[1])
        super().__init__(modality=modality, n_classes=n_classes, input_shape=shape, clip=clip, device="cpu", name=name)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> OnnxTarget:
        """Load an ``.onnx`` file (ONNX holds no code: no ``trust`` needed)."""
        kwargs.setdefault("name", Path(path).stem)
        return cls(load_onnx_session(path, providers=kwargs.get("providers")), **kwargs)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        if self._fixed_batch is not None and n != self._fixed_batch:
            pad = np.zeros((self._fixed_batch - n, *batch.shape[1:]), dtype=batch.dtype)
            batch = np.concatenate([batch, pad])
        out = np.asarray(self.session.run([self._output_name], {self._input_name: batch})[0])
        if out.ndim != 2:
            raise ConfigError(
                f"target.path: the graph's output {self._output_name!r} has shape {list(out.shape)}, "
                "expected (N, n_classes)"
            )
        return out[:n]

    def _predict_proba(self, x: Inputs) -> torch.Tensor:
        assert isinstance(x, torch.Tensor)
        arr = x.detach().cpu().numpy().astype(self._input_dtype, copy=False)
        step = self._fixed_batch or self.batch_size
        chunks = []
        for start in range(0, len(arr), step):
            out = torch.from_numpy(self._run(arr[start : start + step]).astype(np.float32))
            if out.shape[1] != self.n_classes:
                raise ConfigError(
                    f"n_classes: the graph answers {out.shape[1]} scores per input, the target expects {self.n_classes}"
                )
            chunks.append(out.softmax(dim=1) if self.outputs == "logits" else out)
        return torch.cat(chunks)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "outputs": self.outputs}
