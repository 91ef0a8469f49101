"""Nelson et al.'s dictionary attack: spam made of ordinary words, so the filter learns to reject ham."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.poisoning._retrain import predict, retrain
from aisec.attacks.poisoning.common import PoisonedSet
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

_WORD = re.compile(r"[a-z]{2,}")
SOURCES = ("ham", "all")


def words_of(text: str) -> list[str]:
    """Lower-case alphabetic tokens of two letters or more."""
    return _WORD.findall(text.lower())


def build_dictionary(
    texts: Sequence[str], labels: torch.Tensor | Sequence[int], *, source: str = "ham", size: int | None = 100,
    ham_label: int = 0,
) -> list[str]:  # fmt: skip
    """The attacker's dictionary from a data sample: its most frequent words, most frequent first.

    ``source="ham"`` counts the sample's legitimate messages only (Nelson's "usenet" dictionary in
    spirit: ordinary words); ``"all"`` counts every message. ``size=None`` keeps the whole
    vocabulary (Nelson's optimal attack when the sample is the victim's own mail).
    """
    if source not in SOURCES:
        raise InputValidationError("source", f"one of {', '.join(SOURCES)}", source)
    ys = [int(v) for v in (labels.tolist() if isinstance(labels, torch.Tensor) else labels)]
    counts: Counter[str] = Counter()
    for text, y in zip(texts, ys, strict=True):
        if source == "all" or y == ham_label:
            counts.update(set(words_of(text)))  # document frequency: common across messages
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return ranked if size is None else ranked[:size]


def n_added(n_clean: int, fraction: float) -> int:
    """Points to add so that they make ``fraction`` of the poisoned set (at least one)."""
    if not 0.0 < fraction < 1.0:
        raise InputValidationError("fraction", "a poison budget in (0, 1)", fraction)
    return max(1, round(fraction * n_clean / (1.0 - fraction)))


def dictionary_poison(
    texts: Sequence[str],
    labels: torch.Tensor,
    *,
    fraction: float,
    spam_label: int = 1,
    dictionary: Sequence[str] | None = None,
    words_per_message: int | None = None,
    seed: int = 0,
) -> PoisonedSet:
    """Add dictionary messages labelled spam to a training set (Nelson et al. 2008).

    Parameters
    ----------
    texts, labels:
        The clean training set; the poison is appended after it.
    fraction:
        Share of the *poisoned* set that is poison, in (0, 1): ``round(f * N / (1 - f))`` messages
        are added, so :attr:`PoisonedSet.fraction` is ``fraction`` up to rounding.
    spam_label:
        The label the victim gives the attacker's messages (they arrive as spam).
    dictionary:
        The attacker's words; ``None`` takes the 100 most frequent words of ``texts``' ham
        (:func:`build_dictionary`), i.e. an attacker who knows the victim's kind of mail.
    words_per_message:
        ``None``: every message holds the whole dictionary (Nelson's attack emails). A number:
        each message holds that many dictionary words drawn without replacement (seeded), which
        keeps poison close to short legitimate messages.
    seed:
        Seeds the words drawn per message.
    """
    if len(texts) != len(labels):
        raise InputValidationError("labels", f"{len(texts)} labels like texts", len(labels))
    if dictionary is None:
        dictionary = build_dictionary(texts, labels, source="ham", size=100, ham_label=1 - spam_label)
    words = list(dict.fromkeys(dictionary))
    if not words:
        raise InputValidationError("dictionary", "at least one word", 0)
    if words_per_message is not None and words_per_message < 1:
        raise InputValidationError("words_per_message", "an integer >= 1 or None", words_per_message)
    k = n_added(len(texts), fraction)
    rng = np.random.default_rng(seed)
    if words_per_message is None or words_per_message >= len(words):
        poison = [" ".join(words[i] for i in rng.permutation(len(words))) for _ in range(k)]
    else:
        poison = [
            " ".join(words[i] for i in rng.choice(len(words), words_per_message, replace=False)) for _ in range(k)
        ]
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).cpu()
    y_poison = torch.full((k,), spam_label, dtype=torch.long)
    mask = np.concatenate([np.zeros(len(texts), bool), np.ones(k, bool)])
    return PoisonedSet(x=[*texts, *poison], y=torch.cat([y, y_poison]), poisoned=mask, clean_y=torch.cat([y, y_poison]))


def filter_rates(pred: torch.Tensor, y: torch.Tensor, spam_label: int) -> tuple[float, float]:
    """(ham rejection rate, spam detection rate): legitimate messages called spam, spam called spam."""
    pred, y = pred.cpu(), y.cpu()
    ham, spam = y != spam_label, y == spam_label
    rej = float((pred[ham] == spam_label).float().mean()) if ham.any() else 0.0
    det = float((pred[spam] == spam_label).float().mean()) if spam.any() else 0.0
    return rej, det


@dataclass(frozen=True, kw_only=True, slots=True)
class DictionaryConfig:
    """Parameters of :class:`DictionaryAttack`.

    Attributes
    ----------
    fraction:
        Poison as a share of the poisoned training set (Nelson et al.: 1% already hurts SpamBayes).
    fractions:
        A grid of fractions for the curve (e.g. ``[0.01, 0.02, 0.05, 0.1]``), one retrain each;
        the headline is the largest. ``None`` runs ``fraction`` alone.
    source:
        Where the dictionary's words come from: ``"ham"`` (frequent words of legitimate mail) or
        ``"all"`` (frequent words of any mail) of the attacker's sample, the training split.
    dictionary_size:
        Words in the dictionary; ``None`` keeps the sample's whole vocabulary (the optimal attack).
    words_per_message:
        Dictionary words per poison message; ``None`` puts the whole dictionary in each message.
    spam_label:
        The filter's "spam" class; every other class counts as legitimate.
    """

    fraction: float = 0.05
    fractions: tuple[float, ...] | None = None
    source: str = "ham"
    dictionary_size: int | None = 50
    words_per_message: int | None = 5
    spam_label: int = 1

    def __post_init__(self) -> None:
        check_config(self, "dictionary", unit=("fraction",), integer=("spam_label",), non_negative=("spam_label",))
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"dictionary.fraction: expected a number in (0, 1), got {self.fraction!r}")
        for f in ("dictionary_size", "words_per_message"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"dictionary.{f}: expected an integer > 0 or null, got {v!r}")
        check_choice("dictionary.source", self.source, SOURCES)
        if self.fractions is not None:
            if isinstance(self.fractions, str) or not isinstance(self.fractions, list | tuple) or not self.fractions:
                raise ConfigError(f"dictionary.fractions: expected a non-empty list, got {self.fractions!r}")
            for f in self.fractions:
                if isinstance(f, bool) or not isinstance(f, int | float) or not 0.0 < f < 1.0:
                    raise ConfigError(f"dictionary.fractions: expected numbers in (0, 1), got {f!r}")
            object.__setattr__(self, "fractions", tuple(sorted(float(f) for f in self.fractions)))


@register_attack
class DictionaryAttack(Attack):
    """Dictionary attack on a spam filter (Nelson et al. 2008, "Exploiting Machine Learning to Subvert
    Your Spam Filter", LEET 2008).

    The attacker sends messages stuffed with ordinary words; the victim trains on them as spam, and
    the filter learns to treat those words as spam signs, so legitimate mail is rejected: an
    availability attack. The dictionary is the most frequent words of the attacker's sample (the
    training split stands in for it, the strongest such sample). The victim is retrained with its
    own recipe on the poisoned set and compared with a clean retrain of the same recipe and seed.

    Headline ``ham_rejection_rate``: share of legitimate test messages the poisoned filter calls
    spam (at the largest fraction), beside ``baseline_ham_rejection_rate``. How far it rises
    depends on the learner: per-token generative filters (SpamBayes, naive Bayes) move much more
    than a regularised discriminative one (TF-IDF + logistic regression), where the poison mostly
    raises the spam scores of ham without crossing the decision threshold (``ham_spam_score``).
    """

    name = "dictionary"
    goal = Goal.AVAILABILITY
    needs = frozenset({Capability.ADD_POINTS})
    modalities = frozenset({Modality.TEXT})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0020"
    owasp = "ML02"
    paper = "Nelson et al. 2008, Exploiting Machine Learning to Subvert Your Spam Filter, LEET 2008"
    headline = "ham_rejection_rate"
    worse_when = "higher"
    retrains = True
    Config = DictionaryConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: DictionaryConfig = self.config
        if cfg.spam_label >= view.n_classes:
            raise InputValidationError("spam_label", f"a label below {view.n_classes}", cfg.spam_label)
        if len(data.y_train) == 0 or len(data.y_test) == 0:
            raise InputValidationError("data", "non-empty train and test splits", (len(data.y_train), len(data.y_test)))
        x, y = list(data.x_train), data.y_train.cpu()
        x_test, y_test = list(data.x_test), data.y_test.cpu()
        ham_label = next(c for c in range(view.n_classes) if c != cfg.spam_label)
        words = build_dictionary(x, y, source=cfg.source, size=cfg.dictionary_size, ham_label=ham_label)
        fractions = cfg.fractions or (cfg.fraction,)
        total = len(fractions) + 1
        clean = retrain(ctx, x, y, done=0, total=total)
        base_rej, base_det = filter_rates(predict(clean, x_test), y_test, cfg.spam_label)
        base_score = _ham_spam_score(clean, x_test, y_test, cfg.spam_label)
        curve: list[dict[str, float | int]] = []
        last: PoisonedSet | None = None
        for i, f in enumerate(fractions):
            ps = dictionary_poison(
                x, y, fraction=f, spam_label=cfg.spam_label, dictionary=words,
                words_per_message=cfg.words_per_message, seed=ctx.seed,
            )  # fmt: skip
            model = retrain(ctx, ps.x, ps.y, done=i + 1, total=total)
            rej, det = filter_rates(predict(model, x_test), y_test, cfg.spam_label)
            score = _ham_spam_score(model, x_test, y_test, cfg.spam_label)
            curve.append({"poison_fraction": f, "n_poison": ps.n_poison, "ham_rejection_rate": rej,
                          "spam_detection_rate": det, "ham_spam_score": score})  # fmt: skip
            last = ps
        assert last is not None
        top = curve[-1]
        metrics = {
            "ham_rejection_rate": top["ham_rejection_rate"],
            "baseline_ham_rejection_rate": base_rej,
            "spam_detection_rate": top["spam_detection_rate"],
            "baseline_spam_detection_rate": base_det,
            "ham_spam_score": top["ham_spam_score"],
            "baseline_ham_spam_score": base_score,
            "poison_fraction": top["poison_fraction"],
            "n_poison": top["n_poison"],
            "n_train": len(y),
            "n_ham_test": int((y_test != cfg.spam_label).sum()),
            "dictionary_size": len(words),
            "curve": curve,
        }
        flags = []
        if top["ham_rejection_rate"] <= base_rej:
            flags.append("the poison did not raise the ham rejection rate at this fraction")
        summary = (
            f"dictionary attack ({len(words)} {cfg.source} words, {top['n_poison']} poison messages = "
            f"{top['poison_fraction']:.0%} of training): ham rejection {top['ham_rejection_rate']:.1%} "
            f"(clean retrain {base_rej:.1%}), spam detection {top['spam_detection_rate']:.1%} (clean {base_det:.1%})"
        )
        arrays = {
            "poisoned": last.poisoned,
            "poison_texts": np.asarray(list(last.x[len(y) : len(y) + 20]), dtype=np.str_),
            "dictionary": np.asarray(words[:1000], dtype=np.str_),
            "fractions": np.asarray([c["poison_fraction"] for c in curve], dtype=np.float64),
            "ham_rejection": np.asarray([c["ham_rejection_rate"] for c in curve], dtype=np.float64),
        }
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)


def _ham_spam_score(target: object, x: list[str], y: torch.Tensor, spam_label: int) -> float:
    """Mean spam probability the filter gives legitimate test messages (moves before labels flip)."""
    from aisec.core.goals import OutputKind
    from aisec.targets.base import Target

    assert isinstance(target, Target)
    ham = [t for t, v in zip(x, y.tolist(), strict=True) if v != spam_label]
    if not ham:
        return 0.0
    probs = target.view(Knowledge.WHITE_BOX, OutputKind.PROBABILITIES).predict_proba(ham)
    return float(probs[:, spam_label].mean())


__all__ = ["DictionaryAttack", "DictionaryConfig", "build_dictionary", "dictionary_poison", "filter_rates", "n_added"]
