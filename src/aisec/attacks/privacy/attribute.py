"""Attribute inference from a model's answers, with the no-model baseline beside it (Fredrikson et al. 2014)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.privacy.sample import affordable_split
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class AttributeInferenceConfig:
    """Parameters of :class:`AttributeInference`.

    Attributes
    ----------
    attribute:
        Index of the sensitive feature (a column of the tabular inputs).
    n_values:
        The feature is cut into this many quantile bins (on population data); the attacker
        guesses the bin, each represented by its population median.
    n_samples:
        Members and as many non-members whose attribute is guessed.
    n_bootstrap:
        Paired bootstrap resamples for the 95% interval of the gain over the baseline.
    batch_size:
        Inputs per query.
    """

    attribute: int = 0
    n_values: int = 4
    n_samples: int | None = 200
    n_bootstrap: int = 500
    batch_size: int = 1024

    def __post_init__(self) -> None:
        ints = ("n_values", "n_bootstrap", "batch_size")
        check_config(
            self, "attribute-inference", integer=(*ints, "attribute"), positive=ints, non_negative=("attribute",)
        )
        if self.n_values < 2:
            raise ConfigError(f"attribute-inference.n_values: expected at least 2, got {self.n_values}")
        check_config(self, "attribute-inference", counts=("n_samples",))


def paired_gain_interval(attack: np.ndarray, base: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """95% percentile-bootstrap interval of mean(attack) - mean(base), resampling records in pairs."""
    if len(attack) == 0:
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(attack), (n_boot, len(attack)))
    gains = attack[idx].mean(1) - base[idx].mean(1)
    return [float(v) for v in np.percentile(gains, [2.5, 97.5])]


@register_attack
class AttributeInference(Attack):
    """Attribute inference from a model's answers, beside the no-model baseline.

    Black-box: query access (probabilities) plus population data from the same distribution, the
    statistics Fredrikson et al. assume and the calibration data ``loss-threshold`` uses too.

    The attacker knows a training record's other features and its label and wants one sensitive
    feature. For each candidate value (quantile bins of the population) it queries the model and
    picks the value that makes the true label most likely, weighted by the value's prior given the
    other features, learnt from population data (Fredrikson et al. 2014, "Privacy in Pharmacogenetics", USENIX Security; the
    confidence-score attack of Mehnaz et al. 2022, arXiv:2201.09370). The **baseline** guesses
    the same value with no model at all, from the other features by a classifier fitted on
    population data: what data correlations alone reveal. The finding is the gain of the attack
    over the baseline on members, with a paired-bootstrap 95% interval; an interval that holds
    zero is reported as no leak beyond data correlations.
    """

    name = "attribute-inference"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.PROBABILITIES})
    modalities = frozenset({Modality.TABULAR})
    knowledge = Knowledge.BLACK_BOX  # queries only, plus population data for the prior and the baseline
    atlas = "AML.T0024.001"
    owasp = "ML03"
    paper = "Fredrikson et al. 2014, Privacy in Pharmacogenetics; Mehnaz et al. 2022, arXiv:2201.09370"
    headline = "gain_over_baseline"
    worse_when = "higher"
    min_queries = 100
    Config = AttributeInferenceConfig

    def _guess(
        self, view: TargetView, x: torch.Tensor, y: torch.Tensor, values: np.ndarray, log_prior: np.ndarray
    ) -> np.ndarray:
        cfg: AttributeInferenceConfig = self.config
        scores = np.zeros((len(y), len(values)))
        for j, v in enumerate(values):
            xv = x.clone()
            xv[:, cfg.attribute] = float(v)
            for s in range(0, len(y), cfg.batch_size):
                p = view.predict_proba(xv[s : s + cfg.batch_size]).double().cpu()
                py = p.gather(1, y[s : s + cfg.batch_size].view(-1, 1).cpu()).squeeze(1)
                scores[s : s + cfg.batch_size, j] = py.clamp_min(1e-300).log().numpy()
        return (scores + log_prior).argmax(1)

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        from sklearn.linear_model import LogisticRegression

        cfg: AttributeInferenceConfig = self.config
        if not isinstance(data.x_train, torch.Tensor) or data.x_train.ndim != 2:
            raise InputValidationError("data", "tabular inputs of shape (N, features)", "other inputs")
        if cfg.attribute >= data.x_train.shape[1]:
            raise InputValidationError("attribute", f"a feature index below {data.x_train.shape[1]}", cfg.attribute)
        # every member and non-member is queried once per candidate value
        split, shrunk = affordable_split(view, data, cfg.n_samples, ctx.seed, attack=self.name, per_point=cfg.n_values)
        x_in, x_out, x_pop = (
            cast(torch.Tensor, part[0]).float() for part in (split.members, split.non_members, split.population)
        )
        y_in, y_out = split.members[1], split.non_members[1]
        a = cfg.attribute
        pop_attr = x_pop[:, a].numpy()
        edges = np.quantile(pop_attr, np.linspace(0, 1, cfg.n_values + 1)[1:-1])
        bins_pop = np.searchsorted(edges, pop_attr, side="right")
        values = np.array(
            [
                np.median(pop_attr[bins_pop == b]) if (bins_pop == b).any() else np.median(pop_attr)
                for b in range(cfg.n_values)
            ]
        )
        prior = np.bincount(bins_pop, minlength=cfg.n_values) + 1.0
        log_marginal = np.log(prior / prior.sum())
        others = [i for i in range(x_pop.shape[1]) if i != a]
        base_model = None
        if len(set(bins_pop.tolist())) > 1:
            base_model = LogisticRegression(max_iter=1000).fit(x_pop[:, others].numpy(), bins_pop)

        def log_prior(x: torch.Tensor) -> np.ndarray:
            """log P(bin | other features) from population data alone: the no-model baseline's belief."""
            out = np.tile(log_marginal, (len(x), 1))
            if base_model is not None and len(x):
                out[:] = -np.inf
                out[:, base_model.classes_] = base_model.predict_log_proba(x[:, others].numpy())
            return out

        results = {}
        for part, x, y in (("members", x_in, y_in), ("non_members", x_out, y_out)):
            truth = np.searchsorted(edges, x[:, a].numpy(), side="right")
            prior_x = log_prior(x)
            hit = (self._guess(view, x, y, values, prior_x) == truth).astype(float)
            base = (prior_x.argmax(1) == truth).astype(float)
            results[part] = (hit, base)
            ctx.step(len(results), 2)
        hit, base = results["members"]
        gain = float(hit.mean() - base.mean()) if len(hit) else 0.0
        ci = paired_gain_interval(hit, base, cfg.n_bootstrap, ctx.seed)
        hit_o, base_o = results["non_members"]
        leak = ci[0] > 0.0
        metrics = {
            "gain_over_baseline": gain,
            "gain_ci95": ci,
            "attack_accuracy_members": float(hit.mean()) if len(hit) else 0.0,
            "baseline_accuracy_members": float(base.mean()) if len(base) else 0.0,
            "attack_accuracy_non_members": float(hit_o.mean()) if len(hit_o) else 0.0,
            "baseline_accuracy_non_members": float(base_o.mean()) if len(base_o) else 0.0,
            "chance_accuracy": 1.0 / cfg.n_values,
            "leak_beyond_data_correlations": leak,
            "n_members": len(hit),
        }
        verdict = "leaks beyond data correlations" if leak else "no leak beyond data correlations"
        summary = (
            f"attribute {a} ({cfg.n_values} bins): attack {metrics['attack_accuracy_members']:.1%} vs no-model baseline "
            f"{metrics['baseline_accuracy_members']:.1%} on members, gain {gain:+.1%} "
            f"(95% CI {ci[0]:+.1%} to {ci[1]:+.1%}): {verdict}"
        )
        arrays = {"hits_members": hit, "baseline_hits_members": base, "bin_values": values}
        return AttackResult(metrics=metrics, summary=summary, flags=shrunk, arrays=arrays)
