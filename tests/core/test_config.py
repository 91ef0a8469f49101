"""Spec files: a valid spec parses with defaults; every bad one gives one clear ConfigError."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aisec.core.config import load_spec, parse_spec, spec_to_dict
from aisec.core.goals import Capability, Goal, Knowledge, OutputKind, ProtectionNeed
from aisec.errors import ConfigError

BASE: dict[str, Any] = {
    "name": "digits-cnn",
    "target": {"kind": "torch", "path": "model.pt"},
    "data": {"kind": "digits"},
}


def spec_with(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def test_minimal_spec_gets_the_documented_defaults() -> None:
    spec = parse_spec(BASE)
    tm = spec.threat
    assert tm.knowledge is Knowledge.BLACK_BOX
    assert tm.output is OutputKind.PROBABILITIES
    assert tm.query_budget == 10_000
    assert tm.needs == {g: ProtectionNeed.NORMAL for g in Goal}
    assert spec.attacks == "auto"
    assert spec.target.trust is False
    assert spec.data.test_size == 0.25


def test_the_spec_of_the_design_page_parses() -> None:
    spec = parse_spec(
        {
            "name": "spam-filter",
            "target": {"kind": "sklearn", "path": "filter.joblib", "trust": True},
            "data": {"kind": "sms_spam", "path": "SMSSpamCollection"},
            "threat_model": {
                "knowledge": "black-box",
                "output": "probabilities",
                "query_budget": 20000,
                "training_data": ["add_points"],
                "needs": {
                    "integrity": "high",
                    "availability": "high",
                    "confidentiality": "normal",
                    "privacy": "very-high",
                },
            },
            "attacks": [{"name": "fgsm", "eps": 0.2}, "loss-threshold"],
        }
    )
    tm = spec.threat
    assert tm.training_data == {Capability.ADD_POINTS}
    assert tm.needs[Goal.PRIVACY] is ProtectionNeed.VERY_HIGH
    assert spec.attacks != "auto"
    assert [(a.name, a.params) for a in spec.attacks] == [("fgsm", {"eps": 0.2}), ("loss-threshold", {})]


def test_choices_are_spelled_freely_everywhere() -> None:
    spec = parse_spec(
        spec_with(
            lambda d: d.update(
                threat_model={"knowledge": "White_Box", "output": "Top_K", "needs": {"Privacy": "Very_High"}}
            )
        )
    )
    assert spec.threat.knowledge is Knowledge.WHITE_BOX
    assert spec.threat.output is OutputKind.TOP_K
    assert spec.threat.needs == {Goal.PRIVACY: ProtectionNeed.VERY_HIGH}


def test_spec_to_dict_parses_back_to_the_same_spec() -> None:
    spec = parse_spec(spec_with(lambda d: d.update(attacks=[{"name": "fgsm", "eps": 0.3}])))
    assert parse_spec(spec_to_dict(spec)) == spec


# (case, change, words the message must contain: the field first, then what is allowed)
BAD_SPECS: list[tuple[str, Callable[[dict[str, Any]], object], list[str]]] = [
    (
        "unknown top-level field",
        lambda d: d.update(treat_model={}),
        ["treat_model", "unknown field", "name", "target", "data", "threat_model", "attacks"],
    ),
    (
        "unknown target field",
        lambda d: d["target"].update(pth="m.pt"),
        ["target.pth", "unknown field", "path", "url", "trust"],
    ),
    (
        "unknown threat model field",
        lambda d: d.update(threat_model={"knowlege": "white-box"}),
        ["threat_model.knowlege", "unknown field", "knowledge", "output", "query_budget", "needs"],
    ),
    (
        "bad knowledge",
        lambda d: d.update(threat_model={"knowledge": "glass-box"}),
        ["threat_model.knowledge", "glass-box", "white-box", "grey-box", "black-box"],
    ),
    (
        "bad output",
        lambda d: d.update(threat_model={"output": "logits"}),
        ["threat_model.output", "logits", "probabilities", "top-k", "labels"],
    ),
    (
        "bad need",
        lambda d: d.update(threat_model={"needs": {"integrity": "extreme"}}),
        ["threat_model.needs.integrity", "extreme", "normal", "high", "very-high"],
    ),
    (
        "bad goal in needs",
        lambda d: d.update(threat_model={"needs": {"integrty": "high"}}),
        ["threat_model.needs", "integrty", "integrity", "availability", "confidentiality", "privacy"],
    ),
    (
        "bad training-data capability",
        lambda d: d.update(threat_model={"training_data": ["steal"]}),
        ["threat_model.training_data", "steal", "add-points", "delete-points", "modify-points", "flip-labels"],
    ),
    (
        "bad target kind",
        lambda d: d["target"].update(kind="keras"),
        ["target.kind", "keras", "torch", "sklearn", "onnx", "http"],
    ),
    ("http target without url", lambda d: d.update(target={"kind": "http"}), ["target", "http", "url"]),
    ("sklearn target without path", lambda d: d.update(target={"kind": "sklearn"}), ["target", "sklearn", "path"]),
    ("npz data without path", lambda d: d.update(data={"kind": "npz"}), ["data", "npz", "path"]),
    (
        "bad data kind",
        lambda d: d.update(data={"kind": "mnist"}),
        ["data.kind", "mnist", "digits", "breast_cancer", "sms_spam", "npz", "csv"],
    ),
    (
        "attacks neither auto nor a list",
        lambda d: d.update(attacks="all"),
        ["attacks", "'all'", "auto", "fgsm", "loss-threshold"],
    ),
    ("attack without a name", lambda d: d.update(attacks=[{"eps": 0.1}]), ["attacks", "item 0", "name"]),
    (
        "unknown attack",
        lambda d: d.update(attacks=["fgsm", "pgdd"]),
        ["attacks[1]", "pgdd", "fgsm", "loss-threshold"],
    ),
    (
        "bad attack parameter",
        lambda d: d.update(attacks=[{"name": "fgsm", "epsilon": 0.1}]),
        ["attacks[0]", "epsilon", "eps", "targeted", "n_samples", "batch_size"],
    ),
    (
        "bad attack value",
        lambda d: d.update(attacks=[{"name": "fgsm", "eps": -0.1}]),
        ["attacks[0]", "fgsm.eps", ">= 0", "-0.1"],
    ),
    (
        "attack value of the wrong type",
        lambda d: d.update(attacks=[{"name": "fgsm", "batch_size": 1.5}]),
        ["attacks[0]", "fgsm.batch_size", "integer", "1.5"],
    ),
    ("missing required field", lambda d: d.pop("target"), ["target", "required"]),
    ("bad name", lambda d: d.update(name="my spec!"), ["name", "letters, digits", "my spec!"]),
    ("negative budget", lambda d: d.update(threat_model={"query_budget": -1}), ["threat_model.query_budget", "-1"]),
    (
        "test_size out of range",
        lambda d: d.update(data={"kind": "digits", "test_size": 1.5}),
        ["data.test_size", "1.5"],
    ),
]


@pytest.mark.parametrize(("change", "words"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_a_bad_spec_gives_one_config_error_naming_field_and_allowed_values(
    change: Callable[[dict[str, Any]], object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(spec_with(change), source="my.yaml")
    msg = str(info.value)
    assert msg.startswith("my.yaml: ")
    assert "\n" not in msg
    assert "more)" not in msg  # one problem, told once
    for word in words:
        assert word in msg, f"{word!r} missing from: {msg}"
    field = words[0]
    assert msg.index(field) < min(msg.index(w) for w in words[1:] if w != field)  # the field comes first
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no pydantic traceback behind it


@pytest.mark.parametrize("data", [None, [], "name: x", 3])
def test_a_spec_that_is_not_a_mapping_is_refused(data: object) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_spec(data)


# -- files ---------------------------------------------------------------------------------------

SPEC_YAML = """\
name: from-file
target:
  kind: torch
  path: models/cnn.pt
data:
  kind: npz
  path: ../data/digits.npz
threat_model:
  knowledge: white-box
attacks: [fgsm]
"""


def test_load_spec_resolves_relative_paths_against_the_spec_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "spec.yaml").write_text(SPEC_YAML)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    spec = load_spec(Path("specs") / "spec.yaml")
    assert spec.target.path == str((folder / "models" / "cnn.pt").resolve())
    assert spec.data.path == str((tmp_path / "data" / "digits.npz").resolve())
    assert spec.threat.knowledge is Knowledge.WHITE_BOX


def test_load_spec_keeps_absolute_paths(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "model.pt"
    (tmp_path / "s.yaml").write_text(SPEC_YAML.replace("models/cnn.pt", str(absolute)))
    assert load_spec(tmp_path / "s.yaml").target.path == str(absolute)


def test_malformed_yaml_is_one_config_error_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntarget: {kind: torch, path: m.pt\ndata:\n  kind: digits\n")
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "malformed YAML at line" in msg
    assert "\n" not in msg


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spec file not found: .*nope\.yaml"):
        load_spec(tmp_path / "nope.yaml")


def test_spec_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01name")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_spec(path)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC_YAML.replace("knowledge: white-box", "knowledge: glass-box"))
    with pytest.raises(ConfigError, match=r"spec\.yaml: threat_model\.knowledge: 'glass-box' is not allowed"):
        load_spec(path)
