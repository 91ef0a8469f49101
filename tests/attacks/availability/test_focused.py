"""Nelson et al.'s focused attack: the chosen legitimate messages get blocked."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.targets import SklearnTarget
from aisec.targets.recipe import recipe_for


def test_focused_poison_holds_the_known_words_of_the_target() -> None:
    from aisec.attacks.availability.focused import (  # registers on use, not at collection (see conftest)
        FocusedAttack,
        focused_poison,
        known_words,
    )

    texts, labels = ["hello there", "free prize"], torch.tensor([0, 1])
    target = "meet me at the old bridge at noon tomorrow"
    ps = focused_poison(texts, labels, target, fraction=0.5, known_fraction=0.5, seed=0)
    assert ps.n_poison == 2 and ps.poisoned.tolist() == [False, False, True, True]
    words = set(target.split())
    for t in ps.x[2:]:
        assert set(t.split()) <= words and len(t.split()) == 4  # half of 8 distinct words
    import numpy as np

    assert len(known_words(target, 1.0, np.random.default_rng(0))) == 8
    with pytest.raises(InputValidationError):
        focused_poison(texts, labels, "!!", fraction=0.5)
    with pytest.raises(ConfigError):
        FocusedAttack(known_fraction=0.0)


def test_focused_attack_blocks_the_chosen_messages(spam_target: SklearnTarget, spam_data: Dataset) -> None:
    # measured (seeds 0, 1): known_fraction 1.0 blocks 10/10 (clean: 0/10); 0.1 blocks 0/5
    from aisec.attacks.availability.focused import (  # registers on use, not at collection (see conftest)
        FocusedAttack,
    )

    view = spam_target.view("black-box", "labels")
    full = FocusedAttack(n_targets=4, known_fraction=1.0).run(
        view, spam_data, AttackContext(seed=0, recipe=recipe_for(spam_target))
    )
    m = full.metrics
    assert m["n_targets"] == 4
    assert m["target_block_rate"] >= 0.75 and m["baseline_block_rate"] <= 0.25
    assert m["collateral_ham_rejection_rate"] <= 0.02
    low, high = m["target_block_rate_ci95"]  # exact, from n_blocked of n_targets
    assert low <= m["target_block_rate"] <= high and high - low > 0.3  # four targets: a wide interval
    few = FocusedAttack(n_targets=4, known_fraction=0.1).run(
        view, spam_data, AttackContext(seed=0, recipe=recipe_for(spam_target))
    )
    assert few.metrics["target_block_rate"] <= m["target_block_rate"] - 0.5
