"""Output hardening: what the API returns, made less useful to a thief and as useful to a user.

An :class:`OutputPolicy` rewrites the probabilities a model serves: label-only, top-k, rounding to n
decimals, calibrated Gaussian or Laplace noise on the log-probabilities (rows stay on the simplex),
or reverse-sigmoid prediction poisoning (Lee et al. 2019, Defending against NN model stealing
attacks using deceptive perturbations, IEEE S&P Workshops, arXiv:1806.00054) that keeps the argmax.
:class:`HardenedTarget` wraps any target with a policy, so the same attacks run through it, and
:func:`evaluate_policy` reports the benign accuracy cost and the fidelity aisec's thief still reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from aisec.core.configurable import check_choice
from aisec.core.goals import Capability
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError, UnsupportedTargetError
from aisec.targets.base import Inputs, Target

Mode = Literal["none", "labels", "top-k", "round", "noise", "reverse-sigmoid"]
MODES = ("none", "labels", "top-k", "round", "noise", "reverse-sigmoid")


@dataclass(frozen=True, kw_only=True, slots=True)
class OutputPolicy:
    """How the served probabilities are hardened.

    Attributes
    ----------
    mode:
        ``none``, ``labels`` (the label only), ``top-k`` (the k largest probabilities, the rest 0),
        ``round`` (to ``decimals`` decimals), ``noise`` (``distribution`` noise of scale ``scale``
        added to the log-probabilities, then renormalised), ``reverse-sigmoid`` (Lee et al. 2019
        with ``beta`` and ``gamma``; the argmax is kept).
    seed:
        Seeds the noise (each call draws fresh noise from a generator seeded once).
    """

    mode: Mode = "none"
    k: int = 1
    decimals: int = 1
    scale: float = 0.5
    distribution: Literal["gaussian", "laplace"] = "gaussian"
    beta: float = 0.5
    gamma: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("output.mode", self.mode, MODES)
        check_choice("output.distribution", self.distribution, ("gaussian", "laplace"))
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"output.k: expected an integer >= 1, got {self.k!r}")
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or self.decimals < 0:
            raise ConfigError(f"output.decimals: expected an integer >= 0, got {self.decimals!r}")
        for name in ("scale", "beta", "gamma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"output.{name}: expected a number >= 0, got {v!r}")

    def apply(self, probs: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The hardened rows for probabilities ``probs`` (N, C); ``labels`` mode gives one-hot rows."""
        p = probs.double().clamp_min(0)
        p = p / p.sum(1, keepdim=True).clamp_min(1e-300)
        top = p.argmax(1)
        if self.mode == "none":
            return p
        if self.mode == "labels":
            return torch.nn.functional.one_hot(top, p.shape[1]).double()
        if self.mode == "top-k":
            k = min(self.k, p.shape[1])
            t = p.topk(k, dim=1)
            return torch.zeros_like(p).scatter_(1, t.indices, t.values)
        if self.mode == "round":
            return torch.round(p * 10**self.decimals) / 10**self.decimals
        if self.mode == "noise":
            shape = p.shape
            if self.distribution == "gaussian":
                eps = torch.randn(shape, generator=gen, dtype=torch.float64)
            else:
                u = torch.rand(shape, generator=gen, dtype=torch.float64) - 0.5
                eps = -u.sign() * torch.log1p(-2 * u.abs()) / math.sqrt(2)  # unit-variance Laplace
            return torch.softmax(p.clamp_min(1e-12).log() + self.scale * eps.to(p.device), dim=1)
        return _reverse_sigmoid(p, top, self.beta, self.gamma)


def _reverse_sigmoid(p: torch.Tensor, top: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """y' = normalise(y - beta * (sigmoid(gamma * logit(y)) - 1/2)), then the original argmax restored."""
    y = p.clamp(1e-6, 1 - 1e-6)
    r = beta * (torch.sigmoid(gamma * torch.log(y / (1 - y))) - 0.5)
    q = (y - r).clamp_min(0)
    q = q / q.sum(1, keepdim=True).clamp_min(1e-300)
    now = q.argmax(1)
    rows = (now != top).nonzero().squeeze(1)
    if len(rows):  # swap the two entries so the served label is the model's label
        a, b = q[rows, top[rows]].clone(), q[rows, now[rows]].clone()
        q[rows, top[rows]], q[rows, now[rows]] = b, a
    return q


class HardenedTarget(Target):
    """A target that serves ``target``'s outputs through ``policy``.

    Label-only hardening provides no probabilities at all (a view asking for them is refused).
    The hardened model has no gradients: a white-box view sees the served outputs only.
    """

    kind = "hardened"

    def __init__(self, target: Target, policy: OutputPolicy) -> None:
        if not isinstance(policy, OutputPolicy):
            raise InputValidationError("policy", "an OutputPolicy", type(policy).__name__)
        super().__init__(
            modality=target.modality,
            n_classes=target.n_classes,
            input_shape=target.input_shape,
            clip=target.clip,
            device=target.device,
            name=f"{target.name}+{policy.mode}",
        )
        self.inner = target
        self.policy = policy
        self._gen = torch.Generator().manual_seed(policy.seed)

    @property
    def capabilities(self) -> frozenset[Capability]:
        if self.policy.mode == "labels":
            return frozenset({Capability.LABELS})
        return frozenset({Capability.LABELS, Capability.PROBABILITIES})

    def validate_inputs(self, x: Any, *, argument: str = "x") -> Inputs:
        return self.inner.validate_inputs(x, argument=argument)

    def _predict_proba(self, x: Inputs) -> torch.Tensor:
        if self.policy.mode == "labels":
            raise UnsupportedTargetError("this API serves labels only", [Capability.PROBABILITIES])
        return self.policy.apply(self.inner._predict_proba(x).cpu(), self._gen).to(self.device)

    def _predict_labels(self, x: Inputs) -> torch.Tensor:
        raw = self.inner._predict_proba(x).cpu()
        if self.policy.mode == "noise":
            return self.policy.apply(raw, self._gen).argmax(1).to(self.device)
        return raw.argmax(1).to(self.device)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "kind": self.kind, "name": self.name, "output_policy": self.policy.mode}


def evaluate_policy(
    target: Target,
    policy: OutputPolicy,
    data: Dataset,
    *,
    queries: int = 250,
    knowledge: str = "grey-box",
    seed: int = 0,
    thief_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The benign cost of ``policy`` and the fidelity aisec's thief still reaches through it.

    Returns ``benign_accuracy`` (undefended) and ``hardened_accuracy`` (the labels users get),
    ``accuracy_cost``, ``label_change_rate``, ``mean_abs_probability_change`` (how far served
    probabilities moved; nan for label-only), and the thief's ``fidelity`` (agreement of the stolen
    model with the undefended model on held-out data), ``thief_accuracy`` and ``queries``.
    """
    from aisec.attacks.confidentiality._thief_nets import predict_proba
    from aisec.attacks.confidentiality.thief import ThiefConfig, steal

    hardened = HardenedTarget(target, policy)
    x_test, y_test = data.x_test, data.y_test.cpu()
    raw = target.view("white-box", "probabilities").predict_proba(x_test).cpu()
    served = hardened._predict_labels(hardened.validate_inputs(x_test)).cpu()
    prob_change = float("nan")
    if policy.mode != "labels":
        prob_change = (policy.apply(raw) - raw.double()).abs().sum(1).mean().item() / 2
    output = "labels" if policy.mode == "labels" else "probabilities"
    view = hardened.view(knowledge, output, budget=queries)
    model, metrics = steal(view, data, ThiefConfig(queries=queries, **(thief_params or {})), seed)
    assert isinstance(x_test, torch.Tensor)
    stolen = predict_proba(model, x_test.float().cpu()).argmax(1)
    benign = (raw.argmax(1) == y_test).double().mean().item()
    hard = (served == y_test).double().mean().item()
    return {
        "policy": policy.mode,
        "benign_accuracy": benign,
        "hardened_accuracy": hard,
        "accuracy_cost": benign - hard,
        "label_change_rate": (served != raw.argmax(1)).double().mean().item(),
        "mean_abs_probability_change": prob_change,
        "fidelity": (stolen == raw.argmax(1)).double().mean().item(),
        "fidelity_to_served_labels": metrics["fidelity"],
        "thief_accuracy": (stolen == y_test).double().mean().item(),
        "queries": metrics["queries"],
    }
