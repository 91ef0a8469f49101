"""The token-trigger detector finds text backdoors that the representation detectors miss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.attacks.poisoning.backdoor import add_backdoor
from aisec.attacks.poisoning.common import TokenTrigger as Trigger
from aisec.data import Dataset
from aisec.defenses.data.poison import get_detector
from aisec.errors import ConfigError, InputValidationError

HAM = [
    "see",
    "you",
    "at",
    "home",
    "later",
    "ok",
    "call",
    "me",
    "when",
    "you",
    "get",
    "there",
    "love",
    "dinner",
    "tonight",
    "thanks",
]
SPAM = [
    "free",
    "prize",
    "claim",
    "now",
    "txt",
    "win",
    "cash",
    "urgent",
    "award",
    "reply",
    "stop",
    "mobile",
    "offer",
    "guaranteed",
]


def _corpus(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        vocab = SPAM if i % 2 else HAM
        texts.append(" ".join(rng.choice(vocab, size=8)))
        labels.append(i % 2)
    return texts, torch.tensor(labels)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_planted_trigger_is_found_and_nothing_else(seed: int) -> None:
    x, y = _corpus(400, seed)
    ps = add_backdoor(x, y, fraction=0.05, trigger=Trigger(tokens=("qz", "vv")), target_label=0, seed=seed)
    det = get_detector("token-trigger").detect(ps.x, ps.y, seed=seed)
    flagged = det.flagged
    assert flagged[ps.poisoned].mean() >= 0.9 and ps.poisoned[flagged].mean() == 1.0
    assert set(det.info["triggers"][0]["words"]) >= {"qz", "vv"}
    clean = get_detector("token-trigger").detect(x, y, seed=seed)
    assert not clean.flagged.any()  # no natural word group flips its own messages


def test_the_sms_backdoor_is_found(spam_data: Dataset) -> None:
    ham = spam_data.class_names.index("ham")
    x = list(spam_data.x_train)
    for trigger, fraction in ((Trigger(), 0.05), (Trigger(), 0.01), (Trigger(tokens=("lol",)), 0.01)):
        ps = add_backdoor(x, spam_data.y_train, fraction=fraction, trigger=trigger, target_label=ham, seed=0)
        det = get_detector("token-trigger").detect(ps.x, ps.y)
        # measured: precision 1.0 and recall 0.98-1.0 at 1% and 5% ("cf mn"; "lol", a word that also occurs naturally)
        assert ps.poisoned[det.flagged].mean() >= 0.95 and det.flagged[ps.poisoned].mean() >= 0.9
    clean = get_detector("token-trigger").detect(x, spam_data.y_train)
    assert clean.flagged.sum() == 0  # measured 0 over seeds 0-2


def test_numeric_inputs_and_bad_configs_are_refused() -> None:
    with pytest.raises(InputValidationError, match="list of texts"):
        get_detector("token-trigger").detect(torch.zeros(10, 4), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"token-trigger\.min_flip_rate"):
        get_detector("token-trigger", min_flip_rate=2.0)
