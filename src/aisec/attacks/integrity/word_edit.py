"""Greedy word-level edits (character perturbations or deletions) against a text classifier."""

from __future__ import annotations

import re
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

_TOKENS = re.compile(r"(\s+)")
_LEET = {"a": "@", "e": "3", "i": "1", "o": "0", "s": "5", "l": "1", "t": "7", "g": "9", "b": "8"}
_MODES = ("both", "substitute", "delete")


@dataclass(frozen=True, kw_only=True, slots=True)
class WordEditConfig:
    """Parameters of :class:`WordEdit`.

    Attributes
    ----------
    max_edits:
        Edit budget: most words of one message the attack may change or delete.
    mode:
        ``"substitute"``: character-level variants of a word (leet digits ``free -> fr3e``, a dot
        inside ``f.ree``, two letters swapped, a letter dropped); ``"delete"``: drop the word;
        ``"both"``: whichever of them lowers the true class's probability most.
    max_tries:
        Most words tried per message, most important first (a try that helps nothing costs
        queries but no edit).
    source_class:
        Attack only test messages with this label (e.g. 1 for spam against a spam filter);
        ``None`` attacks every correctly classified message.
    n_samples:
        Test messages to draw; ``None`` takes the whole test split.
    """

    max_edits: int = 5
    mode: Literal["both", "substitute", "delete"] = "both"
    max_tries: int = 10
    source_class: int | None = None
    n_samples: int | None = 200

    def __post_init__(self) -> None:
        check_config(self, "word-edit", integer=("max_edits", "max_tries"), positive=("max_edits", "max_tries"))
        check_choice("word-edit.mode", self.mode, _MODES)
        if self.source_class is not None:
            check_config(self, "word-edit", integer=("source_class",), non_negative=("source_class",))
        check_config(self, "word-edit", counts=("n_samples",))


def char_variants(word: str) -> list[str]:
    """Character-level variants of a word that a human still reads as the word (DeepWordBug-style)."""
    out: list[str] = []
    low = word.lower()
    leet = [i for i, c in enumerate(low) if c in _LEET][:3]
    out += [word[:i] + _LEET[low[i]] + word[i + 1 :] for i in leet]
    if len(word) >= 2:
        mid = len(word) // 2
        out.append(word[:mid] + "." + word[mid:])
    if len(word) >= 4:
        out.append(word[:1] + word[2] + word[1] + word[3:])  # swap the 2nd and 3rd letters
        out.append(word[:-2] + word[-1])  # drop the second to last letter
    return list(dict.fromkeys(v for v in out if v != word))


def _edit(parts: list[str], index: int, new: str) -> str:
    return "".join([*parts[:index], new, *parts[index + 1 :]])


@register_attack
class WordEdit(Attack):
    """Greedy word-level evasion with an edit budget (after Gao et al. 2018, DeepWordBug, arXiv:1801.04354).

    Black-box and score-based. For each message the attack ranks its words by importance, the drop
    of the true class's probability when the word is left out (every leave-one-out deletion in
    one batched query), then walks the words from the most important: it scores every candidate
    edit of the word in one batched query (character-level variants, the greedy token choice of
    Ebrahimi et al. 2018, HotFlip, arXiv:1712.06751, done here without gradients, and/or deleting
    the word) and keeps the one that lowers the true class most, until the label changes or
    ``max_edits`` words are edited.
    """

    name = "word-edit"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.PROBABILITIES})
    modalities = frozenset({Modality.TEXT})
    knowledge = Knowledge.BLACK_BOX
    atlas = "AML.T0043.001"
    owasp = "ML01"
    paper = "Gao et al. 2018, Black-box Generation of Adversarial Text Sequences (DeepWordBug), arXiv:1801.04354"
    headline = "evasion_rate"
    worse_when = "higher"
    min_queries = 2
    Config = WordEditConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: WordEditConfig = self.config
        if cfg.source_class is not None and cfg.source_class >= view.n_classes:
            raise InputValidationError("source_class", f"a label below {view.n_classes}", cfg.source_class)
        remaining = view.budget.remaining
        if remaining is not None and remaining < self.min_queries:
            raise BudgetExceededError(view.budget.limit or 0, view.queries, self.min_queries)
        queries_before = view.queries
        x, y = data.test_subset(cfg.n_samples, ctx.seed)
        texts = list(view.validate(x, argument="data.x_test"))
        labels = y.tolist()
        chosen = [i for i, lab in enumerate(labels) if cfg.source_class is None or lab == cfg.source_class]
        flags: list[str] = []
        n_correct, edits, examples = 0, [], []
        for step, i in enumerate(chosen):
            try:
                outcome = self._attack_one(view, cfg, texts[i], labels[i])
            except BudgetExceededError:  # raised before the batch is charged: stop with what was measured
                flags.append(f"budget exhausted after {step} of {len(chosen)} messages")
                break
            ctx.step(step + 1, len(chosen))
            if outcome is None:  # misclassified already: nothing to evade
                continue
            n_correct += 1
            edits.append(outcome[0])
            if outcome[0] <= cfg.max_edits and len(examples) < 20:
                examples.append((texts[i], outcome[1]))
        ctx.step(max(len(chosen), 1), max(len(chosen), 1))
        arr = np.asarray(edits, dtype=np.int64)
        ok = arr <= cfg.max_edits
        rate = float(ok.mean()) if len(arr) else 0.0
        if not len(arr):
            flags.append("no correctly classified message to attack")
        metrics = {
            "evasion_rate": rate,
            "mean_edits": float(arr[ok].mean()) if ok.any() else None,
            "max_edits": cfg.max_edits,
            "n": n_correct,
            "clean_accuracy": n_correct / len(chosen) if chosen else 0.0,
            "queries": view.queries - queries_before,
        }
        summary = (
            f"word-edit ({cfg.mode}): {rate:.1%} of {n_correct} correctly classified messages change label "
            f"with at most {cfg.max_edits} edited words"
        )
        arrays = {
            "edits": arr,
            "original": np.asarray([a for a, _ in examples], dtype=np.str_),
            "adversarial": np.asarray([b for _, b in examples], dtype=np.str_),
        }
        return AttackResult(metrics=metrics, summary=summary, flags=flags, arrays=arrays)

    def _attack_one(self, view: TargetView, cfg: WordEditConfig, text: str, label: int) -> tuple[int, str] | None:
        """Edits needed (``max_edits + 1`` when it failed) and the final text; ``None`` if misclassified."""
        parts = _TOKENS.split(text)
        slots = [j for j, p in enumerate(parts) if p and not p.isspace() and any(c.isalnum() for c in p)]
        probs = _ask(view, [text, *(_edit(parts, j, "") for j in slots)])
        if int(probs[0].argmax()) != label:
            return None
        current = float(probs[0, label])
        importance = current - probs[1:, label]
        order = [slots[int(k)] for k in torch.argsort(importance, descending=True, stable=True)]
        n_edits = 0
        for j in order[: cfg.max_tries]:
            candidates = [] if cfg.mode == "delete" else char_variants(parts[j])
            if cfg.mode != "substitute":
                candidates.append("")
            if not candidates:
                continue
            probs = _ask(view, [_edit(parts, j, c) for c in candidates])
            best = int(probs[:, label].argmin())
            if float(probs[best, label]) >= current:
                continue
            parts[j] = candidates[best]
            current = float(probs[best, label])
            n_edits += 1
            if int(probs[best].argmax()) != label:
                return n_edits, "".join(parts)
            if n_edits == cfg.max_edits:
                break
        return cfg.max_edits + 1, "".join(parts)


def _ask(view: TargetView, texts: list[str]) -> torch.Tensor:
    return view.predict_proba(texts).cpu()
