"""Targets and the views an attacker gets of them.

A :class:`Target` adapts a model (torch, scikit-learn, ONNX, HTTP) to one interface. An attack
never touches a target directly: it gets a :class:`TargetView` made by
``target.view(knowledge, output, budget=...)``, which exposes only what the threat model allows
(gradients and parameters only to a white-box attacker; probabilities or labels as the API returns
them) and charges every prediction query to the budget.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, TypeAlias

import numpy as np
import torch
from torch import nn

from aisec.core.budget import QueryBudget
from aisec.core.goals import Capability, Knowledge, Modality, OutputKind
from aisec.errors import AccessDeniedError, InputValidationError, UnsupportedTargetError

#: Inputs of a target: a float tensor for images and tabular data, a list of strings for text.
Inputs: TypeAlias = torch.Tensor | Sequence[str]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` or ``None`` picks CUDA when present, else the CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Target(ABC):
    """A model under test, behind an adapter.

    Subclasses implement :meth:`_predict_proba` (and, when they can, :meth:`_torch_module` for
    gradients). Everything an attack does goes through :meth:`view`.
    """

    kind: ClassVar[str] = "base"

    def __init__(
        self,
        *,
        modality: Modality | str,
        n_classes: int,
        input_shape: Sequence[int] | None = None,
        clip: tuple[float, float] | None = None,
        device: str | torch.device | None = "cpu",
        name: str = "target",
    ) -> None:
        self.modality = Modality.parse(modality, field="modality")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise InputValidationError("n_classes", "an integer >= 2", n_classes)
        self.n_classes = n_classes
        self.input_shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
        if clip is not None:
            lo, hi = (float(clip[0]), float(clip[1]))
            if not lo < hi:
                raise InputValidationError("clip", "(low, high) with low < high", clip)
            clip = (lo, hi)
        self.clip = clip
        self.device = resolve_device(device)
        self.name = name

    # -- what the adapter can provide -------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        """Model-access capabilities this adapter can provide, whatever the threat model."""
        caps = {Capability.LABELS, Capability.PROBABILITIES}
        if self.has_gradients:
            caps |= {Capability.GRADIENTS, Capability.PARAMETERS}
        return frozenset(caps)

    @property
    def has_gradients(self) -> bool:
        """Whether :meth:`_torch_module` returns a differentiable model."""
        return False

    # -- to implement ------------------------------------------------------------------------
    @abstractmethod
    def _predict_proba(self, x: Inputs) -> torch.Tensor:
        """Probabilities, shape (N, n_classes), floating point (float64 where the model computes in it) on :attr:`device`."""

    def _predict_labels(self, x: Inputs) -> torch.Tensor:
        """Labels, shape (N,), int64; by default the argmax of :meth:`_predict_proba`."""
        return self._predict_proba(x).argmax(dim=1)

    def _torch_module(self) -> nn.Module:
        """A module mapping inputs to logits, for white-box gradient attacks."""
        raise UnsupportedTargetError(f"{self.kind} target has no differentiable model", [Capability.GRADIENTS])

    def _parameters(self) -> Any:
        """The model's parameters in the adapter's own form (module, estimator, graph)."""
        raise UnsupportedTargetError(f"the {self.kind} target does not expose its parameters", [Capability.PARAMETERS])

    def close(self) -> None:  # noqa: B027  (a no-op that adapters holding resources override)
        """Release what the adapter holds (connections, sessions); a no-op by default."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- input checks --------------------------------------------------------------------------
    def validate_inputs(self, x: Any, *, argument: str = "x") -> Inputs:
        """Check and convert inputs; raises :class:`InputValidationError` naming what is wrong."""
        if self.modality is Modality.TEXT:
            if isinstance(x, str) or not isinstance(x, Sequence | np.ndarray):
                raise InputValidationError(argument, "a list of strings", type(x).__name__)
            items = list(x)
            bad = next((i for i, s in enumerate(items) if not isinstance(s, str)), None)
            if bad is not None:
                raise InputValidationError(f"{argument}[{bad}]", "a string", type(items[bad]).__name__)
            return items
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if not isinstance(x, torch.Tensor):
            raise InputValidationError(argument, "a float tensor", type(x).__name__)
        if not torch.is_floating_point(x):
            raise InputValidationError(argument, "a floating-point tensor", f"dtype {x.dtype}")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise InputValidationError(
                argument, f"shape (N, {', '.join(map(str, self.input_shape))})", f"shape {tuple(x.shape)}"
            )
        if x.ndim < 2:
            raise InputValidationError(argument, "a batch with shape (N, ...)", f"shape {tuple(x.shape)}")
        if x.numel():
            xmin, xmax = (float(v) for v in torch.aminmax(x))  # one pass over the inputs; a NaN makes both NaN
            if self.clip is not None:
                lo, hi = self.clip
                tol = 1e-5 * max(1.0, hi - lo)
                if xmin < lo - tol or xmax > hi + tol:
                    raise InputValidationError(
                        argument, f"values in [{lo}, {hi}]", f"values in [{xmin:.4g}, {xmax:.4g}]"
                    )
            if not (math.isfinite(xmin) and math.isfinite(xmax)):
                raise InputValidationError(argument, "finite values", "NaN or inf")
        return x.to(self.device, dtype=torch.float32)

    # -- the attacker's window ------------------------------------------------------------------
    def view(
        self,
        knowledge: Knowledge | str,
        output: OutputKind | str,
        *,
        budget: QueryBudget | int | None = None,
        top_k: int = 1,
    ) -> TargetView:
        """What an attacker with this knowledge sees through an API with this output kind."""
        if not isinstance(budget, QueryBudget):
            budget = QueryBudget(budget)
        return TargetView(self, Knowledge.parse(knowledge), OutputKind.parse(output), budget, top_k)

    def describe(self) -> dict[str, Any]:
        """Plain description for run metadata and reports."""
        return {
            "kind": self.kind,
            "name": self.name,
            "modality": self.modality.value,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "clip": list(self.clip) if self.clip else None,
            "device": str(self.device),
        }


class _CountingModule(nn.Module):
    """Wraps the white-box model and counts forward passes (they are not queries)."""

    def __init__(self, inner: nn.Module, view: TargetView) -> None:
        super().__init__()
        self.inner = inner
        self._view = view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._view.forward_passes += int(x.shape[0])
        return self.inner(x)


class TargetView:
    """An attacker's window on a target, limited by knowledge, output kind and query budget.

    Every call of :meth:`predict_proba` or :meth:`predict` is a query of ``len(x)`` inputs
    charged to :attr:`budget` before the target is asked. A white-box attacker also gets
    :attr:`model` (inputs to logits, differentiable) and :attr:`parameters`; passes through the
    model run on the attacker's own copy, so they are counted in :attr:`forward_passes`, not as
    queries.
    """

    def __init__(
        self,
        target: Target,
        knowledge: Knowledge,
        output: OutputKind,
        budget: QueryBudget,
        top_k: int = 1,
        *,
        checks: QueryBudget | None = None,
    ) -> None:
        if top_k < 1:
            raise InputValidationError("top_k", "an integer >= 1", top_k)
        self._target = target
        self.knowledge = knowledge
        self.output = output
        self.budget = budget
        self.top_k = top_k
        self.forward_passes = 0
        self._model: nn.Module | None = None
        self._checks = checks if checks is not None else QueryBudget(None)

    # -- facts the attacker may know -----------------------------------------------------------
    @property
    def modality(self) -> Modality:
        return self._target.modality

    @property
    def n_classes(self) -> int:
        return self._target.n_classes

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self._target.input_shape

    @property
    def clip(self) -> tuple[float, float] | None:
        return self._target.clip

    @property
    def device(self) -> torch.device:
        return self._target.device

    @property
    def queries(self) -> int:
        """Queries charged to the budget through this view's budget."""
        return self.budget.used

    @property
    def check_queries(self) -> int:
        """Inputs the assessor's checks sent through :meth:`evaluation_view` views of this view (never charged)."""
        return self._checks.used

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this attacker can actually get: granted by the threat model and provided by the target."""
        caps = {Capability.LABELS}
        provided = self._target.capabilities
        if self.knowledge is Knowledge.WHITE_BOX:
            caps |= provided & {Capability.PROBABILITIES, Capability.GRADIENTS, Capability.PARAMETERS}
        elif self.output is not OutputKind.LABELS and Capability.PROBABILITIES in provided:
            caps.add(Capability.PROBABILITIES)
        return frozenset(caps)

    def require(self, *needs: Capability) -> None:
        """Raise unless every capability in ``needs`` is available through this view."""
        missing = [c for c in needs if c not in self.capabilities]
        if not missing:
            return
        unsupported = [c for c in missing if c not in self._target.capabilities]
        if unsupported:
            raise UnsupportedTargetError(f"the {self._target.kind} target cannot provide this", unsupported)
        raise AccessDeniedError(
            f"a {self.knowledge} attacker with {self.output} output may not use " + ", ".join(c.value for c in missing)
        )

    # -- queries ---------------------------------------------------------------------------------
    def validate(self, x: Any, *, argument: str = "x") -> Inputs:
        """Validate inputs as the target would, without charging a query."""
        return self._target.validate_inputs(x, argument=argument)

    def predict_proba(self, x: Any) -> torch.Tensor:
        """Class probabilities for ``x`` as the API returns them (top-k zeroes the others)."""
        self.require(Capability.PROBABILITIES)
        x = self.validate(x)
        self.budget.charge(len(x))
        if len(x) == 0:
            return torch.empty(0, self.n_classes, device=self.device)
        try:
            probs = self._target._predict_proba(x)
        except UnsupportedTargetError:
            self.budget.refund(len(x))  # e.g. a server found to answer labels only: nothing was learned
            raise
        if self.knowledge is not Knowledge.WHITE_BOX and self.output is OutputKind.TOP_K:
            k = min(self.top_k, self.n_classes)
            top = probs.topk(k, dim=1)
            probs = torch.zeros_like(probs).scatter_(1, top.indices, top.values)
        return probs

    def predict(self, x: Any) -> torch.Tensor:
        """Predicted labels for ``x``, shape (N,), int64."""
        x = self.validate(x)
        self.budget.charge(len(x))
        if len(x) == 0:
            return torch.empty(0, dtype=torch.long, device=self.device)
        return self._target._predict_labels(x).to(torch.long)

    # -- white-box only ----------------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The differentiable model (inputs to logits), white-box only, in eval mode."""
        self.require(Capability.GRADIENTS)
        if self._model is None:
            self._model = _CountingModule(self._target._torch_module(), self).eval()
        return self._model

    @property
    def parameters(self) -> Any:
        """The model's parameters in the adapter's form (white-box only)."""
        self.require(Capability.PARAMETERS)
        return self._target._parameters()

    def evaluation_view(self) -> TargetView:
        """A white-box view of the same target with no query budget, for the *assessor's* measurements.

        An attack uses it only to score what it achieved (fidelity of a stolen model on held-out
        data, overlap of recovered secrets with the true ones), never to steer the attack: its
        queries are not the attacker's and are not charged to :attr:`budget`; they are counted in
        :attr:`check_queries`, since a remote target receives them like any other.
        """
        checks = self._checks
        return TargetView(
            self._target, Knowledge.WHITE_BOX, OutputKind.PROBABILITIES, checks, self.top_k, checks=checks
        )

    def __repr__(self) -> str:
        return (
            f"TargetView({self._target.kind}, {self.knowledge}, {self.output}, "
            f"queries={self.budget.used}/{self.budget.limit})"
        )
