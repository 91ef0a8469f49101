"""PyTorch targets: an ``nn.Module`` in memory, or a TorchScript file."""

from __future__ import annotations

import copy
import logging
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import nn

from aisec.core.configurable import check_choice
from aisec.core.goals import Modality
from aisec.errors import ConfigError, InputValidationError, UntrustedFileError
from aisec.targets.base import Target, resolve_device

logger = logging.getLogger(__name__)

MemoryFormat = Literal["auto", "contiguous", "channels_last"]


class _LogOf(nn.Module):
    """Turns a model that outputs probabilities into one that outputs log-probabilities (logits)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).clamp_min(1e-12).log()


class _ChannelsLast(nn.Module):
    """Runs a channels-last copy of a model on channels-last inputs (same values, faster CPU convolutions)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.contiguous(memory_format=torch.channels_last))


def _has_conv2d(model: nn.Module) -> bool:
    """Whether the model holds a 2-D convolution (TorchScript modules keep the layer's ``original_name``)."""
    return any(isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d" for m in model.modules())


def _channels_last_copy(model: nn.Module, probe: torch.Tensor) -> tuple[nn.Module | None, str]:
    """A channels-last copy of ``model`` that answers ``probe`` as the model does, or ``None`` and why not.

    The user's module is never touched: the copy is made first, answers ``probe`` in the default
    layout, is converted, and must then give the same outputs (a ``.view`` on a convolution's
    output, for one, fails on channels-last tensors).
    """
    try:
        twin = copy.deepcopy(model)
        with torch.no_grad():
            ref = twin(probe)
            with warnings.catch_warnings():  # TorchScript modules warn about .grad of non-leaf parameters
                warnings.simplefilter("ignore", UserWarning)
                twin = twin.to(memory_format=torch.channels_last)
            runner = _ChannelsLast(twin).eval()
            out = runner(probe)
    except Exception as exc:  # deepcopy or the converted forward can fail in many ways in user code
        return None, f"{type(exc).__name__}: {exc}"
    if not isinstance(out, torch.Tensor) or not isinstance(ref, torch.Tensor) or out.shape != ref.shape:
        return None, "the model's output is not one tensor of the same shape in both layouts"
    if not torch.allclose(out.float(), ref.float(), rtol=1e-4, atol=1e-5):
        return None, f"outputs differ by up to {(out.float() - ref.float()).abs().max().item():.3g}"
    return runner, ""


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
        Inputs per forward pass when answering queries (256: on the CPU, the channels-last digits CNN
        costs about the same per row in passes of 64-256 rows and 1.15x more in 1,024-row passes;
        raise it on a GPU).
    memory_format:
        How the model runs. ``"auto"`` (default): on the CPU, a model with ``Conv2d`` layers and
        image inputs ``(C, H, W)`` runs as a channels-last copy (oneDNN's convolutions: 1.9x fewer
        seconds per query on the digits CNN), provided the copy answers a probe batch like the
        model; otherwise the model itself. ``"channels_last"`` asks for the copy and raises
        :class:`ConfigError` when the model cannot run that way; ``"contiguous"`` runs the model
        itself. The user's module is never converted: queries and :attr:`TargetView.model` use the
        copy, so hooks or counters added to the module *after* this call do not see them.
        :attr:`memory_format` tells which layout was picked.
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
        memory_format: MemoryFormat = "auto",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputValidationError("model", "a torch.nn.Module", type(model).__name__)
        check_choice("outputs", outputs, ("logits", "probabilities"))
        if batch_size < 1:
            raise InputValidationError("batch_size", "an integer >= 1", batch_size)
        check_choice("memory_format", memory_format, ("auto", "contiguous", "channels_last"))
        super_kwargs = dict(modality=modality, input_shape=input_shape, clip=clip, device=device, name=name)
        self._module = model
        self.outputs = outputs
        self.batch_size = batch_size
        if n_classes is None:
            dev = resolve_device(device)
            probe = torch.zeros(1, *input_shape, device=dev)
            with torch.no_grad():
                n_classes = int(model.to(dev).eval()(probe).shape[1])
        super().__init__(n_classes=n_classes, **super_kwargs)  # type: ignore[arg-type]
        self._module = model.to(self.device).eval()
        for p in self._module.parameters():
            p.requires_grad_(False)
        self._runner = self._pick_runner(memory_format)
        #: The layout the queries run in: ``"channels_last"`` (a converted copy) or ``"contiguous"``.
        self.memory_format: Literal["contiguous", "channels_last"] = (
            "channels_last" if self._runner is not self._module else "contiguous"
        )

    def _pick_runner(self, memory_format: MemoryFormat) -> nn.Module:
        """The module that answers queries: the user's, or a channels-last copy of it."""
        if memory_format == "contiguous":
            return self._module
        image = self.input_shape is not None and len(self.input_shape) == 3
        if memory_format == "auto" and not (image and self.device.type == "cpu" and _has_conv2d(self._module)):
            return self._module
        if not image:
            raise ConfigError(
                f"memory_format: channels_last needs image inputs (C, H, W); input_shape is {self.input_shape}"
            )
        gen = torch.Generator().manual_seed(0)  # a probe batch in the valid range; the global RNG is left alone
        lo, hi = self.clip if self.clip is not None else (0.0, 1.0)
        probe = (lo + (hi - lo) * torch.rand(4, *self.input_shape, generator=gen)).to(self.device)
        runner, why = _channels_last_copy(self._module, probe)
        if runner is not None:
            return runner
        if memory_format == "channels_last":
            raise ConfigError(f"memory_format: the model cannot run channels-last ({why}); use contiguous")
        logger.info("%s runs in the default memory format: its channels-last copy failed (%s)", self.name, why)
        return self._module

    @classmethod
    def from_file(cls, path: str | Path, *, trust: bool = False, **kwargs: object) -> TorchTarget:
        """Load a TorchScript file (or, with ``trust=True``, a pickled module)."""
        return cls(load_torch_module(path, trust=trust), name=Path(path).stem, **kwargs)  # type: ignore[arg-type]

    @property
    def has_gradients(self) -> bool:
        return True

    def _torch_module(self) -> nn.Module:
        return self._runner if self.outputs == "logits" else _LogOf(self._runner)

    def _parameters(self) -> nn.Module:
        return self._module

    @torch.no_grad()
    def _predict_proba(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        chunks = []
        for start in range(0, len(x), self.batch_size):
            out = self._runner(x[start : start + self.batch_size]).float()
            chunks.append(out.softmax(dim=1) if self.outputs == "logits" else out)
        return torch.cat(chunks)

    @torch.no_grad()
    def _predict_labels(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # the argmax of the model's own outputs: the softmax is monotone, so it changes no label
        return torch.cat(
            [self._runner(x[s : s + self.batch_size]).argmax(dim=1) for s in range(0, len(x), self.batch_size)]
        )
