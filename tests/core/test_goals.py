"""The vocabulary: goals, knowledge, output kinds, needs, capabilities and their parsing."""

from __future__ import annotations

import pytest

from aisec.core.goals import (
    MODEL_ACCESS_CAPABILITIES,
    TRAINING_DATA_CAPABILITIES,
    Capability,
    Goal,
    Knowledge,
    Modality,
    OutputKind,
    ProtectionNeed,
)
from aisec.errors import ConfigError


def test_the_four_security_goals_in_canonical_order() -> None:
    assert [g.value for g in Goal] == ["integrity", "availability", "confidentiality", "privacy"]


@pytest.mark.parametrize(
    ("enum", "text", "member"),
    [
        (Knowledge, "white-box", Knowledge.WHITE_BOX),
        (Knowledge, "White_Box", Knowledge.WHITE_BOX),
        (Knowledge, "  grey-box ", Knowledge.GREY_BOX),
        (OutputKind, "TOP_K", OutputKind.TOP_K),
        (ProtectionNeed, "very_high", ProtectionNeed.VERY_HIGH),
        (Goal, "Privacy", Goal.PRIVACY),
        (Capability, "flip_labels", Capability.FLIP_LABELS),
        (Modality, "text", Modality.TEXT),
    ],
)
def test_parse_accepts_any_case_and_underscores(enum: type, text: str, member: object) -> None:
    assert enum.parse(text) is member


def test_parse_returns_a_member_unchanged() -> None:
    assert Knowledge.parse(Knowledge.BLACK_BOX) is Knowledge.BLACK_BOX


@pytest.mark.parametrize(
    ("enum", "allowed"),
    [
        (Knowledge, ["white-box", "grey-box", "black-box"]),
        (OutputKind, ["probabilities", "top-k", "labels"]),
        (ProtectionNeed, ["normal", "high", "very-high"]),
        (Goal, ["integrity", "availability", "confidentiality", "privacy"]),
    ],
)
def test_parse_error_names_the_field_the_value_and_every_allowed_value(enum: type, allowed: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        enum.parse("nonsense", field="my_field")
    msg = str(info.value)
    assert msg.startswith("my_field: 'nonsense' is not allowed")
    for value in allowed:
        assert value in msg
    assert isinstance(info.value, ValueError)


def test_knowledge_rank_orders_black_grey_white() -> None:
    assert Knowledge.BLACK_BOX.rank < Knowledge.GREY_BOX.rank < Knowledge.WHITE_BOX.rank


def test_choices_are_plain_strings() -> None:
    assert Goal.INTEGRITY == "integrity"
    assert f"{Knowledge.GREY_BOX}" == "grey-box"


def test_capability_groups_are_disjoint_and_cover_what_they_say() -> None:
    assert not TRAINING_DATA_CAPABILITIES & MODEL_ACCESS_CAPABILITIES
    assert {c.value for c in TRAINING_DATA_CAPABILITIES} == {
        "add-points",
        "add-unlabeled-points",
        "delete-points",
        "modify-points",
        "flip-labels",
    }
    assert {Capability.GRADIENTS, Capability.PARAMETERS, Capability.LABELS} <= MODEL_ACCESS_CAPABILITIES
