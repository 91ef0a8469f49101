"""PyTorch targets: an ``nn.Module`` in memory, or a TorchScript file."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import nn

from aisec.core.goals import Modality
from aisec.errors import ConfigError, InputValidationError, UntrustedFileError
from aisec.targets.base import Target


class _LogOf(nn.Module):
    """Turns a model that outputs probabilities into one that outputs log-probabilities (logits)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).clamp_min(1e-12).log()


def load_torch_module(path: str | Path, *, trust: bool = False) -> nn.Module:
    """Load a model file without running code from it unless the user trusts the file.

    A TorchScript archive (``torch.jit.save``) holds TorchScript, which ``torch.jit.load``
    compiles without unpickling arbitrary globals, so it loads as is. A whole pickled module
    (``torch.save(model)``) needs the full unpickler, which runs whatever code the file names:
    that is refused unless ``trust=True``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"target.path: no such file: {path}")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        pass  # not TorchScript
    if not trust:
        raise UntrustedFileError(
            f"{path} is not TorchScript; loading a pickled torch model runs code from the file. "
            "Save it with torch.jit.script/trace, or set target.trust: true (--trust) if you trust its author"
        )
    from aisec.scan import check_before_load

    check_before_load(path)  # even a trusted file is refused if it calls os.system & co. or fails its pin
    try:
        try:  # the restricted unpickler first (tensors and containers only), the full one if needed
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt or foreign file fails in many ways inside the unpickler
        raise ConfigError(
            f"target.path: {path} is not a readable torch model file ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(obj, nn.Module):
        raise ConfigError(
            f"target.path: {path} holds a {type(obj).__name__}, not a model; "
            "a state_dict needs the model class: build the module and pass it to TorchTarget"
        )
    return obj


class TorchTarget(Target):
    """A PyTorch classifier.

    Parameters
    ----------
    model:
        An ``nn.Module`` mapping a batch of inputs to logits (or probabilities, see ``outputs``).
    input_shape:
        Shape of one input, e.g. ``(1, 8, 8)``.
    n_classes:
        Number of classes; inferred from one forward pass when omitted.
    clip:
        Valid input range, e.g. ``(0.0, 1.0)`` for images.
    outputs:
        Whether the model returns ``"logits"`` (default) or ``"probabilities"``.
    device:
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
    batch_size:
        Inputs per forward pass when answering queries (256: on the CPU, the digits CNN costs 1.6x more
        per row in 1,024-row passes; raise it on a GPU).
    """

    kind: ClassVar[str] = "torch"

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: Sequence[int],
        n_classes: int | None = None,
        clip: tuple[float, float] | None = None,
        modality: Modality | str = Modality.IMAGE,
        outputs: Literal["logits", "probabilities"] = "logits",
        device: str | torch.device | None = "auto",
        batch_size: int = 256,
        name: str = "torch-model",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputValidationError("model", "a torch.nn.Module", type(model).__name__)
        if outputs not in ("logits", "probabilities"):
            raise ConfigError(f"outputs: {outputs!r} is not allowed; allowed: logits, probabilities")
        if batch_size < 1:
            raise InputValidationError("batch_size", "an integer >= 1", batch_size)
        super_kwargs = dict(modality=modality, input_shape=input_shape, clip=clip, device=device, name=name)
        self._module = model
        self.outputs = outputs
        self.batch_size = batch_size
        if n_classes is None:
            from aisec.targets.base import resolve_device

            dev = resolve_device(device)
            probe = torch.zeros(1, *input_shape, device=dev)
            with torch.no_grad():
                n_classes = int(model.to(dev).eval()(probe).shape[1])
        super().__init__(n_classes=n_classes, **super_kwargs)  # type: ignore[arg-type]
        self._module = model.to(self.device).eval()
        for p in self._module.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path, *, trust: bool = False, **kwargs: object) -> TorchTarget:
        """Load a TorchScript file (or, with ``trust=True``, a pickled module)."""
        return cls(load_torch_module(path, trust=trust), name=Path(path).stem, **kwargs)  # type: ignore[arg-type]

    @property
    def has_gradients(self) -> bool:
        return True

    def _torch_module(self) -> nn.Module:
        return self._module if self.outputs == "logits" else _LogOf(self._module)

    def _parameters(self) -> nn.Module:
        return self._module

    @torch.no_grad()
    def _predict_proba(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        chunks = []
        for start in range(0, len(x), self.batch_size):
            out = self._module(x[start : start + self.batch_size]).float()
            chunks.append(out.softmax(dim=1) if self.outputs == "logits" else out)
        return torch.cat(chunks)
