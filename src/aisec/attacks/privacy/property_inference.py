"""Property inference: which share of a property the target's training data had (Ganju et al. 2018)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from aisec.attacks.base import Attack, AttackContext, AttackResult
from aisec.attacks.privacy.metrics import clopper_pearson
from aisec.attacks.privacy.property_config import PropertyInferenceConfig
from aisec.attacks.privacy.recipe import mlp_layers
from aisec.attacks.privacy.recipe_shadows import fit_shadows, own_training, recipe_kind
from aisec.attacks.privacy.shadow_config import attacker_pool
from aisec.attacks.privacy.shadows import ShadowModels
from aisec.attacks.privacy.stacked import StackedMLP, train_stacked
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


def neuron_summary(weights: list[torch.Tensor], biases: list[torch.Tensor]) -> np.ndarray:
    """A permutation-invariant representation of ``K`` stacked MLPs, ``(K, F)`` (Ganju et al. 2018).

    Each first-layer neuron ``j`` is the vector of its incoming weights and bias (and, with one
    hidden layer, its outgoing weights); the set of neurons is summarised by the mean and the
    standard deviation of those vectors over the neurons (a DeepSets sum with fixed feature maps),
    the product of the first two weight matrices (a sum over neurons, so invariant too) and the
    output bias, whose order the classes fix.
    """
    w1, b1 = weights[0], biases[0]  # (K, d, h), (K, 1, h)
    neurons = [w1.transpose(1, 2), b1.transpose(1, 2)]  # (K, h, d), (K, h, 1)
    if len(weights) == 2:
        neurons.append(weights[1])  # (K, h, C)
    f = torch.cat(neurons, dim=2)
    parts = [f.mean(1), f.std(1), torch.bmm(w1, weights[1]).flatten(1) / math.sqrt(w1.shape[2]), biases[-1][:, 0]]
    return torch.cat(parts, dim=1).detach().double().cpu().numpy()


def _meta_classifier(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))


@register_attack
class PropertyInference(Attack):
    """Property inference with shadow models and a meta-classifier (Ganju et al. 2018, CCS).

    Ganju et al. 2018 ("Property Inference Attacks on Fully Connected Neural Networks using
    Permutation Invariant Representations") ask what a model gives away about its training set
    as a whole, here the share of points with a property (a class, or a feature above a
    threshold). The attacker trains many cheap shadow models with the target's recipe on data
    drawn from its sample with each of the given shares, and a meta-classifier that tells the
    shares apart from a representation of a model: white-box, a summary of the first layer's
    neurons that does not change when the neurons are permuted (Ganju et al.'s insight); black-box,
    the model's probabilities on a fixed query set (as in Zhang et al. 2021's black-box variant).

    With one target, the honest measurement is the meta-classifier's accuracy on shadows it did
    not train on (cross-validated, with an exact binomial 95% interval, against chance). Its
    prediction for the target is reported too, but it is a single guess.
    """

    name = "property-inference"
    goal = Goal.PRIVACY
    needs = frozenset({Capability.PROBABILITIES, Capability.DATA_SAMPLE})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0024.000"
    owasp = "ML04"
    paper = (
        "Ganju et al. 2018, Property Inference Attacks on Fully Connected Neural Networks using "
        "Permutation Invariant Representations, CCS"
    )
    headline = "meta_accuracy"
    worse_when = "higher"
    min_queries = 1
    Config = PropertyInferenceConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: PropertyInferenceConfig = self.config
        pool_x, pool_y = attacker_pool(data)
        flat = pool_x.reshape(len(pool_x), -1)
        if cfg.property == "class-share":
            if cfg.property_class >= view.n_classes:
                raise InputValidationError("property_class", f"a class below {view.n_classes}", cfg.property_class)
            names = data.class_names
            label = names[cfg.property_class] if cfg.property_class < len(names) else str(cfg.property_class)
            has, what = pool_y == cfg.property_class, f"share of class {label!r}"
            true_share = float((data.y_train == cfg.property_class).float().mean())
        else:
            if cfg.feature >= flat.shape[1]:
                raise InputValidationError("feature", f"a feature index below {flat.shape[1]}", cfg.feature)
            cut = float(flat[:, cfg.feature].median()) if cfg.threshold is None else float(cfg.threshold)
            has, what = flat[:, cfg.feature] > cut, f"share of points with feature {cfg.feature} > {cut:.4g}"
            true_share = float((data.x_train.reshape(len(data.x_train), -1)[:, cfg.feature] > cut).float().mean())
        own = own_training(cfg.trainer, ctx.recipe)  # raises for trainer='target' without one
        flags: list[str] = []
        rep, layers = self._representation(view, flat.shape[1], flags)
        gen = torch.Generator().manual_seed(ctx.seed)
        masks, labels, size = self._masks(has, len(data.y_train), gen, flags)
        hidden = tuple(m.out_features for m in layers[:-1]) if layers else None
        recipe = cfg.recipe(hidden)
        own = own if rep == "black-box" else None  # the neuron summary reads the recipe's MLPs
        steps = len(masks) + 2 if own is not None else 3  # a step per fit of the target's own training
        ctx.step(1, steps)
        model: ShadowModels
        if own is not None:
            seeds = torch.randint(0, 2**31 - 1, (len(masks),), generator=gen).tolist()
            shadows, notes = fit_shadows(
                own,
                pool_x,
                pool_y,
                masks,
                seeds,
                executor=ctx.executor,
                progress=lambda done, _: ctx.step(1 + done, steps),
            )
            model, trainer, flags = shadows.model, recipe_kind(own), flags + notes
        else:
            model, trainer = train_stacked(pool_x, pool_y, masks, view.n_classes, recipe, gen, view.device), "mlp"
        ctx.step(steps - 1, steps)
        if rep == "white-box":
            assert isinstance(model, StackedMLP)  # white-box shadows are always the recipe's MLPs
            feats = neuron_summary(model.weights, model.biases)
            with torch.no_grad():
                w = [m.weight.detach().cpu().T.unsqueeze(0).float() for m in layers]
                b = [m.bias.detach().cpu().view(1, 1, -1).float() for m in layers]
            target_feats = neuron_summary(w, b)
        else:
            qidx = torch.randperm(len(pool_y), generator=gen)[: cfg.n_queries]
            feats = _outputs(model, pool_x[qidx])
            target_feats = view.predict_proba(pool_x[qidx]).cpu().double().reshape(1, -1).numpy()
        acc_hits, guess_p = self._meta(feats, labels, target_feats, ctx.seed)
        ctx.step(steps, steps)
        props = cfg.shares()
        n, hits = len(labels), int(acc_hits.sum())
        from scipy.stats import binomtest

        chance = 1.0 / len(props)
        guess = int(np.argmax(guess_p))
        nearest = int(np.argmin([abs(p - true_share) for p in props]))
        metrics = {
            "meta_accuracy": hits / n,
            "meta_accuracy_ci95": [float(v) for v in clopper_pearson(hits, n)],
            "chance": chance,
            "p_value_vs_chance": float(binomtest(hits, n, chance, alternative="greater").pvalue),
            "n_shadows": n,
            "shadow_size": size,
            **({"shadow_hidden": list(recipe.hidden)} if trainer == "mlp" else {}),  # own training: no widths
            "shadow_trainer": trainer,
            "representation": rep,
            "property": what,
            "proportions": list(props),
            "target_guess": props[guess],
            "target_guess_confidence": float(guess_p[guess]),
            "target_true_share": true_share,
            "target_guess_is_nearest_true": guess == nearest,
        }
        lo = metrics["meta_accuracy_ci95"][0]
        verdict = "tells the shares apart" if lo > chance else "does not tell the shares apart beyond chance"
        summary = (
            f"property inference ({rep}, {what}: {' vs '.join(f'{p:g}' for p in props)}): the meta-classifier "
            f"{verdict}, accuracy {hits / n:.1%} on {n} held-out shadows (95% CI {lo:.1%}-"
            f"{metrics['meta_accuracy_ci95'][1]:.1%}, chance {chance:.0%}); its single guess for the target: "
            f"{props[guess]:g} (confidence {guess_p[guess]:.2f}; the target's true share, known to the assessor, "
            f"is {true_share:.2f})"
        )
        flags.append("the target's share is a single guess: only the held-out accuracy measures the attack")
        arrays = {"shadow_labels": labels, "shadow_correct": acc_hits, "target_probabilities": guess_p}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)

    def _representation(self, view: TargetView, d: int, flags: list[str]) -> tuple[str, list[nn.Linear] | None]:
        cfg: PropertyInferenceConfig = self.config
        if cfg.representation == "black-box" or cfg.trainer == "target":
            return "black-box", None
        if cfg.representation == "white-box":
            view.require(Capability.PARAMETERS)
        elif Capability.PARAMETERS not in view.capabilities:
            return "black-box", None
        layers = mlp_layers(view.parameters, d, view.n_classes)
        if layers is None:
            flags.append(
                "white-box representation needs an MLP-like torch target (Linear and ReLU layers only): "
                "fell back to the black-box representation (outputs on a query set)"
            )
            return "black-box", None
        if cfg.hidden is not None and tuple(cfg.hidden) != tuple(m.out_features for m in layers[:-1]):
            flags.append(f"hidden {list(cfg.hidden)} ignored: the shadows copy the target's layer widths")
        return "white-box", layers

    def _masks(
        self, has: torch.Tensor, n_train: int, gen: torch.Generator, flags: list[str]
    ) -> tuple[torch.Tensor, np.ndarray, int]:
        """Training masks ``(K, N)`` with each proportion's share of ``has``, and each shadow's proportion index."""
        cfg: PropertyInferenceConfig = self.config
        pos, neg = torch.nonzero(has).squeeze(1), torch.nonzero(~has).squeeze(1)
        fit = min(min(len(pos) / p, len(neg) / (1 - p)) for p in cfg.shares())
        size = min(cfg.shadow_size or n_train, int(fit))
        if size < 2:
            raise InputValidationError(
                "data", "points with and without the property", f"{len(pos)} with, {len(neg)} without"
            )
        if size < (cfg.shadow_size or n_train):
            flags.append(f"shadows train on {size} points: the attacker's data has too few for more at these shares")
        k, n_props = cfg.shadows, len(cfg.shares())
        labels = np.arange(k) % n_props
        labels = labels[torch.randperm(k, generator=gen).numpy()]
        masks = torch.zeros(k, len(has), dtype=torch.bool)
        for i, lab in enumerate(labels):
            n_pos = round(cfg.shares()[lab] * size)
            masks[i, pos[torch.randperm(len(pos), generator=gen)[:n_pos]]] = True
            masks[i, neg[torch.randperm(len(neg), generator=gen)[: size - n_pos]]] = True
        return masks, labels, size

    def _meta(
        self, feats: np.ndarray, labels: np.ndarray, target: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Out-of-fold correctness per shadow, and the meta-classifier's (trained on all) probabilities for the target."""
        from sklearn.model_selection import StratifiedKFold

        hits = np.zeros(len(labels), dtype=bool)
        for tr, te in StratifiedKFold(self.config.folds, shuffle=True, random_state=seed).split(feats, labels):
            clf = _meta_classifier(seed).fit(feats[tr], labels[tr])
            hits[te] = clf.predict(feats[te]) == labels[te]
        return hits, _meta_classifier(seed).fit(feats, labels).predict_proba(target)[0]


def _outputs(model: ShadowModels, x: torch.Tensor) -> np.ndarray:
    """``(K, n * C)``: every shadow's float32 softmax probabilities on the query set, flattened."""
    with torch.no_grad():
        p = torch.softmax(model.logits(x.to(model.device)), dim=-1).cpu()
    return p.double().reshape(model.k, -1).numpy()
