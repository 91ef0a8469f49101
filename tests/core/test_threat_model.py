"""The threat model: what each attacker is granted, and how its fields are parsed."""

from __future__ import annotations

import math

import pytest

from aisec.core.goals import TRAINING_DATA_CAPABILITIES, Capability, Goal, Knowledge, OutputKind, ProtectionNeed
from aisec.core.threat_model import ThreatModel
from aisec.errors import ConfigError

C = Capability

WHITE_BOX = {C.LABELS, C.PROBABILITIES, C.GRADIENTS, C.PARAMETERS, C.TRAINING_DATA, C.DATA_SAMPLE}


@pytest.mark.parametrize(
    ("knowledge", "output", "expected"),
    [
        ("white-box", "probabilities", WHITE_BOX),
        ("white-box", "top-k", WHITE_BOX),
        ("white-box", "labels", WHITE_BOX),
        ("grey-box", "probabilities", {C.LABELS, C.PROBABILITIES, C.DATA_SAMPLE}),
        ("grey-box", "top-k", {C.LABELS, C.PROBABILITIES, C.DATA_SAMPLE}),
        ("grey-box", "labels", {C.LABELS, C.DATA_SAMPLE}),
        ("black-box", "probabilities", {C.LABELS, C.PROBABILITIES}),
        ("black-box", "top-k", {C.LABELS, C.PROBABILITIES}),
        ("black-box", "labels", {C.LABELS}),
    ],
)
def test_grants_per_knowledge_and_output(knowledge: str, output: str, expected: set[Capability]) -> None:
    assert ThreatModel(knowledge=knowledge, output=output).grants() == frozenset(expected)


def test_training_data_and_manipulation_are_granted_on_top() -> None:
    tm = ThreatModel(knowledge="black-box", output="labels", training_data=["flip-labels"], manipulate_training=True)
    assert tm.grants() == {C.LABELS, C.FLIP_LABELS, C.MANIPULATE_TRAINING}


def test_missing_lists_what_the_attacker_lacks() -> None:
    tm = ThreatModel(knowledge="black-box", output="labels")
    assert tm.missing({C.GRADIENTS, C.LABELS, C.PROBABILITIES}) == {C.GRADIENTS, C.PROBABILITIES}
    assert ThreatModel(knowledge="white-box").missing({C.GRADIENTS}) == frozenset()


def test_strings_are_parsed_to_the_vocabulary() -> None:
    tm = ThreatModel(knowledge="White_Box", output="TOP_K", needs={"privacy": "very_high", "integrity": "high"})
    assert tm.knowledge is Knowledge.WHITE_BOX
    assert tm.output is OutputKind.TOP_K
    assert tm.needs == {Goal.PRIVACY: ProtectionNeed.VERY_HIGH, Goal.INTEGRITY: ProtectionNeed.HIGH}


@pytest.mark.parametrize(
    "given", [["add_points", "Flip_Labels"], ("add-points", "flip-labels"), {"add-points", "flip-labels"}]
)
def test_training_data_parsing(given: object) -> None:
    assert ThreatModel(training_data=given).training_data == {C.ADD_POINTS, C.FLIP_LABELS}


def test_training_data_as_a_single_string_is_one_capability() -> None:
    assert ThreatModel(training_data="add_points").training_data == {C.ADD_POINTS}


@pytest.mark.parametrize("bad", ["steal-weights", "gradients", "labels"])
def test_bad_training_data_names_the_value_and_only_the_training_data_capabilities(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        ThreatModel(training_data=["add-points", bad])
    msg = str(info.value)
    assert msg.startswith(f"training_data: {bad!r} is not allowed; allowed:")
    allowed = msg.split("allowed:")[1]
    assert {v.strip() for v in allowed.split(",")} == {c.value for c in TRAINING_DATA_CAPABILITIES}


def test_needs_parsing_and_goals_in_canonical_order() -> None:
    tm = ThreatModel(needs={"privacy": "normal", "integrity": "very-high"})
    assert tm.goals == (Goal.INTEGRITY, Goal.PRIVACY)
    assert ThreatModel().goals == ()


@pytest.mark.parametrize(
    ("needs", "field", "allowed"),
    [
        ({"integrty": "high"}, "needs", "integrity"),
        ({"integrity": "extreme"}, "needs.integrity", "very-high"),
    ],
)
def test_bad_needs_name_the_field_and_the_allowed_values(needs: dict, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: .* is not allowed; allowed: .*{allowed}"):
        ThreatModel(needs=needs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"knowledge": "glass-box"}, "knowledge"),
        ({"output": "logits"}, "output"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"top_k": 2.0}, "top_k"),
        ({"query_budget": -1}, "query_budget"),
        ({"query_budget": 10.5}, "query_budget"),
        ({"query_budget": False}, "query_budget"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": math.nan}, "epsilon"),
        ({"epsilon": "0.1"}, "epsilon"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        ThreatModel(**kwargs)


def test_unlimited_budget_and_zero_epsilon_are_valid() -> None:
    tm = ThreatModel(query_budget=None, epsilon=0)
    assert tm.query_budget is None
    assert tm.epsilon == 0


def test_to_dict_round_trips() -> None:
    tm = ThreatModel(
        knowledge="grey-box",
        output="top-k",
        top_k=3,
        query_budget=500,
        training_data=["delete-points"],
        manipulate_training=True,
        needs={"availability": "high"},
        epsilon=0.05,
    )
    d = tm.to_dict()
    assert d["knowledge"] == "grey-box"
    assert d["training_data"] == ["delete-points"]
    assert d["needs"] == {"availability": "high"}
    assert ThreatModel(**d) == tm


def test_threat_model_is_immutable() -> None:
    tm = ThreatModel()
    with pytest.raises(AttributeError):
        tm.knowledge = Knowledge.WHITE_BOX  # type: ignore[misc]
