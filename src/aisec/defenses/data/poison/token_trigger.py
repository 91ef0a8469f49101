"""Trigger tokens in text training sets: words whose removal flips the very messages that carry them.

A text backdoor (BadNets with a token trigger, Gu et al. 2017; Dai et al. 2019, arXiv:1905.12457)
adds messages of one class that carry a rare word sequence and labels them with the target class.
A linear model trained on the set learns the trigger as a strong vote for the target; the rest of
each poisoned message still votes for its real class. So, for the trigger and only for it,
deleting the word from a message that carries it flips the model's answer against the given
label, and it does so for most of those messages. A natural class word ("txt" in spam) rarely
flips a message on its own: the message's other words agree with it.

The detector fits a bag-of-words logistic regression, merges words that occur in exactly the same
messages (a multi-word trigger is one group), and computes in closed form, for every group seen
in at least ``min_count`` messages, the share of its messages whose decision crosses the boundary
against their label when the group's weights are removed (for a phrase, with the weights of its
words). Groups above ``min_flip_rate`` are triggers; their flipped messages are flagged. A trigger
made of a very common word (planted in 1% of messages that also hold hundreds of natural uses)
stays below the rate: the limit of this detector.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from aisec.attacks.base import check_config
from aisec.defenses.data.poison.common import Detector, register_detector
from aisec.errors import InputValidationError
from aisec.targets.base import Inputs


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenTriggerConfig:
    """Parameters of :class:`TokenTrigger`.

    Attributes
    ----------
    min_count:
        Fewest messages a word group must occur in, and flip, to be a trigger (a trigger must be
        planted in many messages to work; rare words flip by chance).
    min_flip_rate:
        Share of a group's messages that must flip against their label when it is removed (0.3:
        on the SMS collection no clean word group reaches it, and a trigger made of a word that
        also occurs naturally, such as "lol", still does at 1% poison).
    C:
        Inverse regularisation of the logistic regression (weak regularisation lets the trigger's
        weight grow as large as the attack needs it).
    ngram_max:
        Longest word n-gram used as a feature.
    """

    min_count: int = 10
    min_flip_rate: float = 0.3
    C: float = 10.0
    ngram_max: int = 2

    def __post_init__(self) -> None:
        check_config(
            self, "token-trigger", integer=("min_count", "ngram_max"), positive=("min_count", "C", "ngram_max")
        )
        check_config(self, "token-trigger", unit=("min_flip_rate",))


@register_detector
class TokenTrigger(Detector):
    """Text backdoor triggers: word groups whose removal flips their own messages against the label."""

    name = "token-trigger"
    paper = "Gu et al. 2017, BadNets, arXiv:1708.06733; Dai et al. 2019, arXiv:1905.12457 (text backdoors)"
    Config = TokenTriggerConfig

    def _detect(self, x: Inputs, y: np.ndarray, model: Any, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression

        if not isinstance(x, list | tuple):
            raise InputValidationError("x", "a list of texts (token-trigger reads words)", type(x).__name__)
        cfg: TokenTriggerConfig = self.config
        vec = CountVectorizer(binary=True, ngram_range=(1, cfg.ngram_max), min_df=cfg.min_count)
        feats = vec.fit_transform(list(x)).tocsc()
        words = vec.get_feature_names_out()
        clf = LogisticRegression(C=cfg.C, max_iter=2000, random_state=seed).fit(feats, y)
        classes = list(clf.classes_)
        coef = clf.coef_ if len(classes) > 2 else np.vstack([-clf.coef_[0], clf.coef_[0]]) / 2
        scores = np.asarray(clf.decision_function(feats))
        margins = scores if scores.ndim == 2 else np.stack([-scores / 2, scores / 2], axis=1)
        label_col = np.array([classes.index(v) for v in y])

        groups: dict[str, list[int]] = {}  # word columns that occur in exactly the same messages
        for j in range(feats.shape[1]):
            rows = feats.indices[feats.indptr[j] : feats.indptr[j + 1]]
            groups.setdefault(hashlib.sha1(rows.tobytes()).hexdigest(), []).append(j)
        index = {w: j for j, w in enumerate(words)}
        for j, w in enumerate(words):  # a phrase: deleting it deletes its words too (their weight counts)
            parts = w.split()
            if len(parts) > 1:
                key = f"phrase:{w}"
                groups[key] = [j, *(index[p] for p in parts if p in index)]

        flagged = np.zeros(len(y), dtype=bool)
        point_scores = np.zeros(len(y))
        found: list[dict[str, Any]] = []
        for cols in groups.values():
            rows = feats.indices[feats.indptr[cols[0]] : feats.indptr[cols[0] + 1]]  # messages with the first column
            without = margins[rows] - coef[:, cols].sum(axis=1)  # the decision with the group's words removed
            agrees = margins[rows].argmax(1) == label_col[rows]
            flips = agrees & (without.argmax(1) != label_col[rows])
            rate = float(flips.mean())
            point_scores[rows] = np.maximum(point_scores[rows], rate)
            if int(flips.sum()) >= cfg.min_count and rate >= cfg.min_flip_rate:
                flagged[rows[flips]] = True
                found.append(
                    {"words": [str(words[c]) for c in cols], "messages": len(rows), "flip_rate": round(rate, 4)}
                )
        found.sort(key=lambda g: -g["messages"] * g["flip_rate"])
        return flagged, point_scores, {"triggers": found, "groups_judged": len(groups)}


__all__ = ["TokenTrigger", "TokenTriggerConfig"]
