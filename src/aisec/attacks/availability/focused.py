"""Nelson et al.'s focused attack: spam built from one legitimate message's words, so that message is blocked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aisec.attacks.availability.dictionary import n_added, words_of
from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.poisoning._retrain import predict, retrain
from aisec.attacks.poisoning.common import PoisonedSet
from aisec.attacks.privacy.metrics import clopper_pearson
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


def known_words(message: str, known_fraction: float, rng: np.random.Generator) -> list[str]:
    """The distinct words of ``message`` the attacker guesses: a random ``known_fraction`` of them (at least one)."""
    words = list(dict.fromkeys(words_of(message)))
    if not words:
        return []
    k = max(1, round(known_fraction * len(words)))
    return [words[i] for i in np.sort(rng.choice(len(words), size=min(k, len(words)), replace=False))]


def focused_poison(
    texts: Sequence[str],
    labels: torch.Tensor,
    target_message: str,
    *,
    fraction: float,
    known_fraction: float = 0.5,
    spam_label: int = 1,
    seed: int = 0,
) -> PoisonedSet:
    """Add spam-labelled messages made of the words the attacker knows of ``target_message``.

    Parameters
    ----------
    texts, labels:
        The clean training set; the poison is appended after it.
    target_message:
        The legitimate message the attacker wants blocked (say, a competitor's bid).
    fraction:
        Share of the poisoned set that is poison, in (0, 1).
    known_fraction:
        Share of the target's distinct words the attacker guesses (Nelson et al. vary it from 0.1
        to 1.0); each poison message holds all known words in a fresh random order.
    spam_label, seed:
        The label the poison gets; seeds the guessed words and their order.
    """
    if not 0.0 < known_fraction <= 1.0:
        raise InputValidationError("known_fraction", "a number in (0, 1]", known_fraction)
    rng = np.random.default_rng(seed)
    words = known_words(target_message, known_fraction, rng)
    if not words:
        raise InputValidationError("target_message", "a message with at least one word", target_message)
    k = n_added(len(texts), fraction)
    poison = [" ".join(words[i] for i in rng.permutation(len(words))) for _ in range(k)]
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).cpu()
    y_all = torch.cat([y, torch.full((k,), spam_label, dtype=torch.long)])
    mask = np.concatenate([np.zeros(len(texts), bool), np.ones(k, bool)])
    return PoisonedSet(x=[*texts, *poison], y=y_all, poisoned=mask, clean_y=y_all)


@dataclass(frozen=True, kw_only=True, slots=True)
class FocusedConfig:
    """Parameters of :class:`FocusedAttack`.

    Attributes
    ----------
    n_targets:
        Legitimate test messages attacked, one poisoned retrain each.
    fraction:
        Poison per target as a share of the poisoned training set.
    known_fraction:
        Share of each target's distinct words the attacker knows.
    min_words:
        Fewest distinct words a message needs to be chosen as a target.
    spam_label:
        The filter's "spam" class; targets are drawn from the other classes.
    """

    n_targets: int = 5
    fraction: float = 0.01
    known_fraction: float = 0.5
    min_words: int = 6
    spam_label: int = 1

    def __post_init__(self) -> None:
        ints = ("n_targets", "min_words")
        check_config(self, "focused", integer=(*ints, "spam_label"), positive=ints, non_negative=("spam_label",))
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"focused.fraction: expected a number in (0, 1), got {self.fraction!r}")
        if not 0.0 < self.known_fraction <= 1.0:
            raise ConfigError(f"focused.known_fraction: expected a number in (0, 1], got {self.known_fraction!r}")


@register_attack
class FocusedAttack(Attack):
    """Focused attack on a spam filter (Nelson et al. 2008, "Exploiting Machine Learning to Subvert
    Your Spam Filter", LEET 2008).

    The attacker wants one particular legitimate message blocked and guesses some of its words
    (``known_fraction``); it sends spam made of those words, which the victim trains on as spam.
    Targets are legitimate test messages with at least ``min_words`` distinct words, drawn with
    the seed; each gets its own poisoned retrain with the victim's recipe, compared with a clean
    retrain of the same recipe and seed.

    Headline ``target_block_rate``: share of the chosen messages the poisoned filter calls spam,
    beside ``baseline_block_rate`` (the clean retrain) and the collateral ``collateral_ham_rejection_rate``
    on the other legitimate test messages (mean over targets).
    """

    name = "focused"
    goal = Goal.AVAILABILITY
    needs = frozenset({Capability.ADD_POINTS})
    modalities = frozenset({Modality.TEXT})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0020"
    owasp = "ML02"
    paper = "Nelson et al. 2008, Exploiting Machine Learning to Subvert Your Spam Filter, LEET 2008"
    headline = "target_block_rate"
    worse_when = "higher"
    retrains = True
    Config = FocusedConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: FocusedConfig = self.config
        if cfg.spam_label >= view.n_classes:
            raise InputValidationError("spam_label", f"a label below {view.n_classes}", cfg.spam_label)
        x, y = list(data.x_train), data.y_train.cpu()
        x_test, y_test = list(data.x_test), data.y_test.cpu()
        ham_idx = [i for i, v in enumerate(y_test.tolist()) if v != cfg.spam_label]
        eligible = [i for i in ham_idx if len(set(words_of(x_test[i]))) >= cfg.min_words]
        if not eligible or len(y) == 0:
            raise InputValidationError(
                "data.x_test", f"legitimate test messages with at least {cfg.min_words} distinct words", 0
            )
        rng = np.random.default_rng(ctx.seed)
        chosen = sorted(rng.choice(eligible, size=min(cfg.n_targets, len(eligible)), replace=False).tolist())
        others = [i for i in ham_idx if i not in set(chosen)]
        total = len(chosen) + 1
        clean = retrain(ctx, x, y, done=0, total=total)
        clean_pred = predict(clean, x_test).cpu()
        base_blocked = [int(clean_pred[i]) == cfg.spam_label for i in chosen]
        base_collateral = _rate(clean_pred, others, cfg.spam_label)
        blocked: list[bool] = []
        collateral: list[float] = []
        n_known: list[int] = []
        n_poison = 0
        for j, i in enumerate(chosen):
            ps = focused_poison(
                x, y, x_test[i], fraction=cfg.fraction, known_fraction=cfg.known_fraction,
                spam_label=cfg.spam_label, seed=ctx.seed + j,
            )  # fmt: skip
            n_poison = ps.n_poison
            n_known.append(len(str(ps.x[len(y)]).split()))
            pred = predict(retrain(ctx, ps.x, ps.y, done=j + 1, total=total), x_test).cpu()
            blocked.append(int(pred[i]) == cfg.spam_label)
            collateral.append(_rate(pred, others, cfg.spam_label))
        rate = float(np.mean(blocked))
        base = float(np.mean(base_blocked))
        low, high = clopper_pearson(np.array(int(np.sum(blocked))), len(chosen))
        metrics = {
            "target_block_rate": rate,
            "target_block_rate_ci95": [float(low), float(high)],  # exact: a handful of targets decide it
            "baseline_block_rate": base,
            "n_targets": len(chosen),
            "n_blocked": int(np.sum(blocked)),
            "known_fraction": cfg.known_fraction,
            "mean_known_words": float(np.mean(n_known)),
            "poison_fraction": cfg.fraction,
            "n_poison_per_target": n_poison,
            "collateral_ham_rejection_rate": float(np.mean(collateral)),
            "baseline_collateral_ham_rejection_rate": base_collateral,
        }
        summary = (
            f"focused attack: {int(np.sum(blocked))} of {len(chosen)} chosen legitimate messages blocked "
            f"(clean retrain: {int(np.sum(base_blocked))}) with {n_poison} poison messages each "
            f"({cfg.fraction:.0%} of training) built from {cfg.known_fraction:.0%} of their words; "
            f"other ham rejected {np.mean(collateral):.1%} (clean {base_collateral:.1%})"
        )
        arrays = {
            "poisoned": ps.poisoned,
            "target_index": np.asarray(chosen, dtype=np.int64),
            "target_texts": np.asarray([x_test[i] for i in chosen], dtype=np.str_),
            "blocked": np.asarray(blocked, dtype=bool),
            "baseline_blocked": np.asarray(base_blocked, dtype=bool),
        }
        return AttackResult(metrics=metrics, summary=summary, arrays=arrays)


def _rate(pred: torch.Tensor, idx: list[int], spam_label: int) -> float:
    return float((pred[idx] == spam_label).float().mean()) if idx else 0.0


__all__ = ["FocusedAttack", "FocusedConfig", "focused_poison", "known_words"]
