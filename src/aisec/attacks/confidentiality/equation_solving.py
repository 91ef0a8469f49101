"""Equation-solving extraction of logistic models from their probabilities."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import AisecError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class EquationSolvingConfig:
    """Parameters of :class:`EquationSolving`.

    Attributes
    ----------
    scale:
        Spread of the random query points around the centre of the input range (inputs units).
        Small spreads keep the probabilities away from 0 and 1, where their logits lose precision.
    check_queries:
        Extra queries beyond the d+1 that the equations need, to test whether the target really
        is linear-logistic (the residual of the fit is reported).
    n_eval:
        Test inputs on which the assessor measures the stolen model's fidelity.
    """

    scale: float = 0.1
    check_queries: int = 16
    n_eval: int | None = 500

    def __post_init__(self) -> None:
        check_config(
            self, "equation-solving", positive=("scale",), integer=("check_queries",), non_negative=("check_queries",)
        )
        check_config(self, "equation-solving", counts=("n_eval",))


def _logit_ratios(p: torch.Tensor) -> torch.Tensor:
    """log(p_c / p_0) for c = 1..C-1: linear in x for a softmax (or sigmoid) of an affine map."""
    p = p.double().clamp_min(1e-300)
    return (p[:, 1:] / p[:, :1]).log()


def _parameter_error(reference: TargetView, theta: torch.Tensor) -> float | None:
    """Largest error of the recovered weight differences, when the target is a scikit-learn linear model."""
    try:
        est = reference.parameters
    except AisecError:
        return None
    est = est.steps[-1][1] if hasattr(est, "steps") else est
    coef, intercept = getattr(est, "coef_", None), getattr(est, "intercept_", None)
    if coef is None or intercept is None:
        return None
    w = torch.as_tensor(coef, dtype=torch.float64)
    b = torch.as_tensor(intercept, dtype=torch.float64)
    true = torch.cat([w, b[:, None]], dim=1).T  # (d+1, C) or (d+1, 1) for a binary model
    if true.shape[1] > 1:
        true = true[:, 1:] - true[:, :1]  # softmax parameters are known up to a shift
    if true.shape != theta.shape:
        return None
    return (true - theta).abs().max().item()


@register_attack
class EquationSolving(Attack):
    """Equation-solving model extraction (Tramèr et al. 2016, Stealing Machine Learning Models via
    Prediction APIs, USENIX Security, arXiv:1609.02943).

    For a (multinomial) logistic regression, ``log(p_c(x) / p_0(x)) = (w_c - w_0)·x + (b_c - b_0)``:
    each answered query is one linear equation per class, so d+1 queries at independent points fix
    every parameter up to the softmax's shift, which changes no prediction. The attacker solves the
    system, then the assessor measures the copy's agreement and probability error on held-out data.
    A target that is not linear-logistic leaves a residual on the extra check queries; the finding
    then says the copy is only a linear approximation.
    """

    name = "equation-solving"
    goal = Goal.CONFIDENTIALITY
    needs = frozenset({Capability.PROBABILITIES})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0024.002"
    owasp = "ML05"
    paper = "Tramèr et al. 2016, Stealing Machine Learning Models via Prediction APIs, arXiv:1609.02943"
    headline = "fidelity"
    worse_when = "higher"
    min_queries = 2
    Config = EquationSolvingConfig

    def queries_needed(self, input_shape: tuple[int, ...] | None) -> int:
        return math.prod(input_shape) + 1 if input_shape else self.min_queries

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: EquationSolvingConfig = self.config
        assert view.input_shape is not None
        d = math.prod(view.input_shape)
        n = d + 1 + cfg.check_queries
        gen = torch.Generator().manual_seed(ctx.seed)
        lo, hi = view.clip if view.clip is not None else (-1.0, 1.0)
        centre = (lo + hi) / 2 if view.clip is not None else 0.0
        half = min(cfg.scale, (hi - lo) / 2) if view.clip is not None else cfg.scale
        x = (centre + half * (2 * torch.rand(n, d, generator=gen, dtype=torch.float64) - 1)).float()
        probs = view.predict_proba(x.view(n, *view.input_shape))
        x = x.double()  # the equations use exactly the float32 points that were sent
        ctx.step(1, 2)
        z = _logit_ratios(probs.cpu())
        design = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
        solve_rows = d + 1
        theta = torch.linalg.solve(design[:solve_rows], z[:solve_rows])  # square: d+1 equations, d+1 unknowns
        residual = (
            (design[solve_rows:] @ theta - z[solve_rows:]).abs().max().item() if cfg.check_queries else float("nan")
        )

        # the assessor's measurement on held-out data (not the attacker's queries)
        reference = view.evaluation_view()
        x_eval, _ = data.test_subset(cfg.n_eval, ctx.seed)
        assert isinstance(x_eval, torch.Tensor)
        p_true = reference.predict_proba(x_eval).double().cpu()
        flat = x_eval.reshape(len(x_eval), -1).double()
        logits = torch.cat([torch.zeros(len(flat), 1, dtype=torch.float64), flat @ theta[:-1] + theta[-1]], dim=1)
        p_copy = logits.softmax(dim=1)
        fidelity = (p_copy.argmax(1) == p_true.argmax(1)).double().mean().item()
        prob_error = (p_copy - p_true).abs().max().item()
        ctx.step(2, 2)
        param_error = _parameter_error(reference, theta)
        linear = residual < 1e-3
        flags = [] if linear else [
            f"the target is not linear-logistic (fit residual {residual:.3g} on {cfg.check_queries} check queries): "
            "the copy is a linear approximation, and a stronger thief (knockoff, distillation) applies"
        ]  # fmt: skip
        metrics = {
            "fidelity": fidelity,
            "max_probability_error": prob_error,
            "fit_residual": residual,
            "max_parameter_error": param_error,
            "linear_logistic": linear,
            "queries_to_solve": solve_rows,
            "n_eval": len(x_eval),
        }
        summary = (
            f"equation solving: {solve_rows} queries ({cfg.check_queries} more to check) give a copy that agrees on "
            f"{fidelity:.1%} of held-out inputs, max probability error {prob_error:.2g}"
        )
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays={"theta": theta.numpy()})
