"""The shared choice rule every config and constructor uses for a closed set of values."""

from __future__ import annotations

import re

import pytest

from aisec.attacks.integrity.pgd_config import PGDConfig
from aisec.core.configurable import check_choice
from aisec.errors import ConfigError


def test_an_allowed_value_passes_and_none_can_be_one_of_them() -> None:
    check_choice("pgd.norm", "l2", ("linf", "l2"))
    check_choice("returns", None, ("probabilities", "labels", None))


def test_a_value_outside_the_set_is_one_line_naming_the_field_the_value_and_the_set_in_order() -> None:
    with pytest.raises(ConfigError) as err:
        check_choice("pgd.norm", "l3", ("linf", "l2"))
    assert str(err.value) == "pgd.norm: 'l3' is not allowed; allowed: linf, l2"
    with pytest.raises(ConfigError, match=r"^returns: 'logits' is not allowed; allowed: probabilities, labels, None$"):
        check_choice("returns", "logits", ("probabilities", "labels", None))


def test_a_near_miss_in_case_or_type_is_refused() -> None:
    for value in ("L2", "l2 ", 2, None):
        with pytest.raises(ConfigError):
            check_choice("pgd.norm", value, ("linf", "l2"))


def test_a_config_refuses_through_it() -> None:
    """The executor factory and the http target assert the same message in their own tests."""
    with pytest.raises(ConfigError, match=re.escape("pgd.norm: 'l1' is not allowed; allowed: linf, l2")):
        PGDConfig(norm="l1")
