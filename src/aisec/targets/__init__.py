"""Target adapters (torch, sklearn, onnx, http) and :func:`load_target` for spec files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aisec.targets.base import Inputs, Target, TargetView, resolve_device
from aisec.targets.sklearn import SklearnTarget
from aisec.targets.torch import TorchTarget

if TYPE_CHECKING:
    from aisec.core.config import TargetSpec
    from aisec.data.dataset import Dataset


def load_target(spec: TargetSpec, data: Dataset) -> Target:
    """Build the target a spec describes; shape, classes and clip range default to the data's."""
    input_shape = tuple(spec.input_shape) if spec.input_shape else data.input_shape
    clip = spec.clip if spec.clip is not None else data.clip
    n_classes = spec.n_classes or data.n_classes
    if spec.kind == "torch":
        assert spec.path is not None and input_shape is not None
        return TorchTarget.from_file(
            spec.path,
            trust=spec.trust,
            input_shape=input_shape,
            n_classes=n_classes,
            clip=clip,
            modality=data.modality,
            outputs=spec.outputs,
            device=spec.device,
            memory_format=spec.memory_format,
        )
    if spec.kind == "sklearn":
        assert spec.path is not None
        return SklearnTarget.from_file(
            spec.path, trust=spec.trust, modality=data.modality, input_shape=input_shape, clip=clip
        )
    if spec.kind == "onnx":
        from aisec.targets.onnx import OnnxTarget

        assert spec.path is not None
        return OnnxTarget.from_file(
            spec.path,
            modality=data.modality,
            input_shape=input_shape,
            n_classes=n_classes,
            clip=clip,
            outputs=spec.outputs,
        )
    from aisec.targets.http import HttpTarget

    assert spec.url is not None
    return HttpTarget(
        spec.url,
        protocol=spec.protocol,
        model_name=spec.model_name,
        modality=data.modality,
        n_classes=n_classes,
        input_shape=input_shape,
        clip=clip,
        timeout=spec.timeout,
        retries=spec.retries,
        batch_size=spec.batch_size,
        headers=spec.headers,
        returns=spec.returns,
        name=spec.model_name or "http-model",
    )


__all__ = ["Inputs", "SklearnTarget", "Target", "TargetView", "TorchTarget", "load_target", "resolve_device"]
