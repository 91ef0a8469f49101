"""Good-word attack on a text classifier: append ham-indicative words until spam passes."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import BudgetExceededError, InputValidationError
from aisec.registry import register_attack
from aisec.targets.base import TargetView

#: The word counts at which the evasion rate is also reported (those up to ``max_words``).
REPORT_AT = (5, 10, 20)

_WORD = re.compile(r"[a-z]{2,}")
_SELECTIONS = ("auto", "query", "first-n", "frequency", "random")
_SOURCES = ("test-half", "train")


@dataclass(frozen=True, kw_only=True, slots=True)
class GoodWordConfig:
    """Parameters of :class:`GoodWord`.

    Attributes
    ----------
    max_words:
        Most words appended to one message; a message that still does not pass counts as not evading.
    selection:
        How the attacker ranks its candidate words. ``"query"`` (Lowd & Meek's best-N, found by
        queries): append each candidate to a few probe spam messages in one batched query and rank
        by the spam probability left; needs probabilities. ``"first-n"`` (their active first-N
        attack, labels only): append frequency-ranked words to a probe spam message until it
        barely stays spam, then put first, in list order, the words that alone tip that
        message to ham (one batched label query). ``"frequency"`` (their passive
        attack): rank by how much more often a word occurs in the ham than in the spam of the
        attacker's sample; no queries, labels suffice. ``"random"``: random words of the sample's
        vocabulary, the baseline. ``"auto"``: ``"query"`` when the view returns probabilities,
        else ``"frequency"``.
    word_source:
        The attacker's data sample the candidate words come from. ``"test-half"`` (black-box): a
        seeded half of the test split, labelled, never evaluated on; the other half is attacked.
        ``"train"`` (grey-box): the training split; the whole test split is then attacked.
    n_candidates:
        Candidate words kept from the sample (the most ham-indicative by frequency first).
    n_probes:
        Probe spam messages each candidate is scored on in ``"query"`` selection.
    min_count:
        Fewest occurrences in the sample's ham for a word to be a candidate.
    ham_class:
        The label the attacker wants (the filter's "ham"); every other label is attacked.
    n_samples:
        Test messages drawn before the split into sample and evaluation; ``None`` takes all.
    """

    max_words: int = 20
    selection: Literal["auto", "query", "first-n", "frequency", "random"] = "auto"
    word_source: Literal["test-half", "train"] = "test-half"
    n_candidates: int = 200
    n_probes: int = 5
    min_count: int = 1
    ham_class: int = 0
    n_samples: int | None = None

    def __post_init__(self) -> None:
        ints = ("max_words", "n_candidates", "n_probes", "min_count")
        check_config(self, "good-word", integer=(*ints, "ham_class"), positive=ints, non_negative=("ham_class",))
        check_choice("good-word.selection", self.selection, _SELECTIONS)
        check_choice("good-word.word_source", self.word_source, _SOURCES)
        check_config(self, "good-word", counts=("n_samples",))


def words_of(text: str) -> list[str]:
    """Lower-case alphabetic tokens of two letters or more."""
    return _WORD.findall(text.lower())


def rank_by_frequency(texts: Sequence[str], labels: torch.Tensor, ham_class: int, min_count: int) -> list[str]:
    """Words of the ham texts, most ham-indicative first (smoothed log ratio of ham to spam frequency)."""
    ham, spam = Counter(), Counter()
    for text, label in zip(texts, labels.tolist(), strict=True):
        (ham if label == ham_class else spam).update(set(words_of(text)))
    n_ham, n_spam = max(sum(ham.values()), 1), max(sum(spam.values()), 1)
    score = {w: math.log((c + 1) / n_ham) - math.log((spam[w] + 1) / n_spam) for w, c in ham.items() if c >= min_count}
    return sorted(score, key=lambda w: (-score[w], w))


def append_words(text: str, words: Sequence[str]) -> str:
    """The message with the words appended after a space."""
    return " ".join([text, *words]) if words else text


@register_attack
class GoodWord(Attack):
    """Good-word attack (Lowd and Meek 2005, "Good Word Attacks on Statistical Spam Filters", CEAS 2005).

    The attacker appends words typical of legitimate mail to a spam message until the filter lets
    it pass. It does not know the filter's weights: it takes candidate words from a labelled
    data sample (``word_source``) and ranks them by probability queries (best-N: the words that
    lower the spam probability of probe messages most), by label queries (first-N: the words that
    tip a barely-spam message to ham) or by their frequency in the sample's ham (passive). Each
    detected spam message of the evaluation half then gets the first 1..``max_words`` ranked
    words appended, all prefixes checked in one batched label query, and evades at the first
    prefix the filter calls ham. ``selection="random"`` appends random words instead and measures
    how much of the effect is mere dilution.

    ``evasion_rate`` and ``evasion_rate_at_k`` are shares of the *detected* spam;
    ``evasion_rate_all_spam`` also counts the spam the filter missed to begin with.
    """

    name = "good-word"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.LABELS})
    modalities = frozenset({Modality.TEXT})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0043.001"
    owasp = "ML01"
    paper = "Lowd and Meek 2005, Good Word Attacks on Statistical Spam Filters, CEAS 2005"
    headline = "evasion_rate"
    worse_when = "higher"
    min_queries = 2
    Config = GoodWordConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: GoodWordConfig = self.config
        if cfg.ham_class >= view.n_classes:
            raise InputValidationError("ham_class", f"a label below {view.n_classes}", cfg.ham_class)
        remaining = view.budget.remaining
        if remaining is not None and remaining < self.min_queries:
            raise BudgetExceededError(view.budget.limit or 0, view.queries, self.min_queries)
        queries_before = view.queries
        rng = np.random.default_rng(ctx.seed)
        x_test, y_test = data.test_subset(cfg.n_samples, ctx.seed)
        x_test = list(view.validate(x_test, argument="data.x_test"))
        if cfg.word_source == "train":
            sample_x, sample_y = list(data.x_train), data.y_train
            eval_x, eval_y = x_test, y_test
        else:
            perm = rng.permutation(len(x_test))
            half = len(perm) // 2
            sample_x, sample_y = (
                [x_test[i] for i in perm[:half]],
                y_test[torch.as_tensor(perm[:half], dtype=torch.long)],
            )
            eval_idx = np.sort(perm[half:])
            eval_x, eval_y = [x_test[i] for i in eval_idx], y_test[torch.as_tensor(eval_idx, dtype=torch.long)]
        selection = cfg.selection
        if selection == "auto":
            selection = "query" if Capability.PROBABILITIES in view.capabilities else "frequency"
        words = self._candidates(view, cfg, selection, sample_x, sample_y, rng)
        spam = [t for t, y in zip(eval_x, eval_y.tolist(), strict=True) if y != cfg.ham_class]
        flags: list[str] = []
        detected = (view.predict(spam).cpu() != cfg.ham_class).tolist() if spam and _affordable(view, len(spam)) else []
        if spam and not detected:
            flags.append("budget exhausted before any message was attacked")
        targets = [t for t, d in zip(spam, detected, strict=False) if d]
        n_words = min(cfg.max_words, len(words))
        if n_words < cfg.max_words:
            flags.append(f"only {n_words} candidate words in the attacker's sample (max_words={cfg.max_words})")
        examples: list[tuple[str, str]] = []  # (spam, the variant that passed)
        needed: list[int] = []  # words needed per attacked message; max_words + 1 when it never passed
        for i, text in enumerate(targets):
            if not _affordable(view, n_words):
                flags.append(f"budget exhausted after {i} of {len(targets)} messages")
                break
            variants = [append_words(text, words[:k]) for k in range(1, n_words + 1)]
            passed = (view.predict(variants).cpu() == cfg.ham_class).nonzero()
            needed.append(int(passed[0, 0]) + 1 if len(passed) else cfg.max_words + 1)
            if len(passed) and len(examples) < 20:
                examples.append((text, variants[needed[-1] - 1]))
            ctx.step(i + 1, len(targets))
        ctx.step(max(len(targets), 1), max(len(targets), 1))
        queries = view.queries - queries_before
        result = self._result(cfg, selection, words, needed, (len(spam), len(targets), queries), flags)
        result.arrays["original"] = np.asarray([a for a, _ in examples], dtype=np.str_)
        result.arrays["adversarial"] = np.asarray([b for _, b in examples], dtype=np.str_)
        return result

    def _candidates(
        self,
        view: TargetView,
        cfg: GoodWordConfig,
        selection: str,
        texts: list[str],
        labels: torch.Tensor,
        rng: np.random.Generator,
    ) -> list[str]:
        """The attacker's ranked word list."""
        if selection == "random":
            vocab = sorted({w for t in texts for w in words_of(t)})
            return [vocab[i] for i in rng.permutation(len(vocab))[: cfg.n_candidates]]
        ranked = rank_by_frequency(texts, labels, cfg.ham_class, cfg.min_count)[: cfg.n_candidates]
        if selection == "frequency" or not ranked:
            return ranked
        if selection == "first-n":
            return self._first_n(view, cfg, ranked, texts, labels)
        view.require(Capability.PROBABILITIES)
        probes = [t for t, y in zip(texts, labels.tolist(), strict=True) if y != cfg.ham_class][: cfg.n_probes] or [""]
        remaining = view.budget.remaining
        if remaining is not None:  # leave at least half of the budget for the attack itself
            ranked = ranked[: max(1, remaining // (2 * len(probes)))]
        batch = [append_words(p, [w]) for w in ranked for p in probes]
        ham_prob = view.predict_proba(batch)[:, cfg.ham_class].reshape(len(ranked), len(probes)).mean(1).cpu()
        order = sorted(range(len(ranked)), key=lambda i: (-float(ham_prob[i]), i))
        return [ranked[i] for i in order]

    @staticmethod
    def _first_n(
        view: TargetView, cfg: GoodWordConfig, ranked: list[str], texts: list[str], labels: torch.Tensor
    ) -> list[str]:
        """Lowd and Meek's first-N words, found with label queries only; ``ranked`` when no probe works."""
        probes = [t for t, y in zip(texts, labels.tolist(), strict=True) if y != cfg.ham_class][: cfg.n_probes]
        for probe in probes:
            if not view.budget.can_afford(2 * len(ranked) + 1):
                break
            prefixes = [append_words(probe, ranked[:k]) for k in range(len(ranked) + 1)]
            passed = (view.predict(prefixes).cpu() == cfg.ham_class).nonzero()
            if not len(passed) or int(passed[0, 0]) == 0:
                continue  # the probe never passes, or is not detected to start with
            k = int(passed[0, 0]) - 1  # the longest prefix still called spam: a barely-spam message
            rest = ranked[k:]
            tipped = view.predict([append_words(prefixes[k], [w]) for w in rest]).cpu() == cfg.ham_class
            good = [w for w, t in zip(rest, tipped.tolist(), strict=True) if t]
            return good + ranked[:k] + [w for w in rest if w not in set(good)]
        return ranked

    @staticmethod
    def _result(
        cfg: GoodWordConfig,
        selection: str,
        words: list[str],
        needed: list[int],
        counts: tuple[int, int, int],
        flags: list[str],
    ) -> AttackResult:
        n_spam, n_detected, queries = counts
        n = len(needed)
        arr = np.asarray(needed, dtype=np.int64)
        evaded = arr <= cfg.max_words
        rate = float(evaded.mean()) if n else 0.0
        metrics: dict[str, float | int | None] = {
            "evasion_rate": rate,
            **{f"evasion_rate_at_{k}": float((arr <= k).mean()) if n else 0.0 for k in REPORT_AT if k <= cfg.max_words},
            "mean_words_added": float(arr[evaded].mean()) if evaded.any() else None,
            "max_words": cfg.max_words,
            "n": n,
            "n_spam": n_spam,
            "detection_rate": n_detected / n_spam if n_spam else 0.0,
            "evasion_rate_all_spam": (n_spam - n_detected + int(evaded.sum())) / n_spam if n_spam else 0.0,
            "n_candidates": len(words),
            "queries": queries,
        }
        if not n:
            flags.append("no detected spam message to attack")
        summary = (
            f"good-word ({selection} selection): {rate:.1%} of {n} detected spam messages pass the filter "
            f"with at most {cfg.max_words} added words; top words: {', '.join(words[:5]) or 'none'}"
        )
        arrays = {"words_needed": arr, "words": np.asarray(words[: cfg.max_words], dtype=np.str_)}
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)


def _affordable(view: TargetView, n: int) -> bool:
    return view.budget.can_afford(n)
