"""The contract every registered attack keeps, checked on each one (DESIGN.md, "Tests and benchmarks").

The fixture an attack runs on is chosen from what it declares: its modalities and its needs. An
attack whose declarations fit none of the fixtures fails here on purpose: add a fixture for it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from aisec.attacks.base import Attack, AttackContext
from aisec.core.budget import QueryBudget
from aisec.core.findings import Finding
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.core.threat_model import ThreatModel
from aisec.data import Dataset
from aisec.errors import (
    AccessDeniedError,
    BudgetExceededError,
    ConfigError,
    InputValidationError,
    UnsupportedTargetError,
)
from aisec.registry import attacks
from aisec.targets import Target, TargetView
from aisec.targets.recipe import Recipe, recipe_for

ATTACKS = attacks()
NAMES = list(ATTACKS)
VIEW_CAPS = {Capability.LABELS, Capability.PROBABILITIES, Capability.GRADIENTS, Capability.PARAMETERS}


@dataclass
class Setup:
    """A target and data an attack can run on."""

    target: Target
    data: Dataset

    @property
    def recipe(self) -> Recipe:
        """A training recipe for attacks that retrain: a clone of an sklearn target, else a small torch MLP."""
        recipe = recipe_for(self.target)
        if recipe is not None:
            return recipe
        n_classes, shape = self.target.n_classes, self.target.input_shape
        assert shape is not None

        def train(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), 32), nn.ReLU(), nn.Linear(32, n_classes))
            opt = torch.optim.Adam(model.parameters(), lr=0.01)
            for _ in range(30):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            return model.eval()

        return recipe_for(self.target, train)  # type: ignore[return-value]

    def context(self, cls: type[Attack], **kwargs: Any) -> AttackContext:
        """The run context, with the recipe when the attack retrains the target."""
        return AttackContext(recipe=self.recipe if cls.retrains else None, **kwargs)


#: The fixtures an attack can run on, by modality: (target fixture, data fixture, what the target provides).
FIXTURES: dict[str, tuple[str, str, frozenset[Capability]]] = {
    "image": ("digits_cnn_target", "digits", frozenset(VIEW_CAPS)),
    "tabular": ("cancer_mlp_target", "cancer", frozenset(VIEW_CAPS)),
    "text": (
        "tiny_text_target",
        "tiny_text",
        frozenset({Capability.LABELS, Capability.PROBABILITIES, Capability.PARAMETERS}),
    ),
}
MODALITIES = list(FIXTURES)


def fitting(cls: type[Attack]) -> list[str]:
    """The fixtures whose modality the attack takes and whose target provides what it needs.

    Gradient attacks try the digits CNN first, the others the breast cancer MLP.
    """
    order = ["image", "tabular", "text"] if Capability.GRADIENTS in cls.needs else ["tabular", "image", "text"]
    return [m for m in order if Modality(m) in cls.modalities and (cls.needs & VIEW_CAPS) <= FIXTURES[m][2]]


def first_fit(cls: type[Attack]) -> str:
    fits = fitting(cls)
    if not fits:
        pytest.fail(
            f"no test fixture fits attack {cls.name!r} (modalities {set(cls.modalities)}, needs {set(cls.needs)})"
        )
    return fits[0]


@pytest.fixture
def setups(request: pytest.FixtureRequest) -> dict[str, Setup]:
    return {
        m: Setup(request.getfixturevalue(target), request.getfixturevalue(data))
        for m, (target, data, _) in FIXTURES.items()
    }


def fitting_setup(cls: type[Attack], setups: dict[str, Setup]) -> Setup:
    return setups[first_fit(cls)]


def test_the_fixture_table_tells_the_truth(setups: dict[str, Setup]) -> None:
    for m, (_, _, caps) in FIXTURES.items():
        assert setups[m].target.capabilities == caps
        assert setups[m].target.modality is Modality(m) is setups[m].data.modality


def small(cls: type[Attack]) -> Attack:
    """The attack with its default config, on few samples where it has that parameter."""
    names = {f.name for f in dataclasses.fields(cls.Config)}
    return cls(**({"n_samples": 48} if "n_samples" in names else {}))


def the_view(cls: type[Attack], setup: Setup, budget: int | None = None) -> TargetView:
    """The view an attacker with the attack's least knowledge gets, with the output it needs."""
    output = "probabilities" if Capability.PROBABILITIES in cls.needs else "labels"
    return setup.target.view(cls.knowledge, output, budget=budget)


def test_there_are_attacks_and_they_are_sorted_by_goal() -> None:
    assert {"fgsm", "loss-threshold"} <= set(NAMES)
    goals = [list(Goal).index(cls.goal) for cls in ATTACKS.values()]
    assert goals == sorted(goals)


# -- metadata and config --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips(name: str) -> None:
    cls = ATTACKS[name]
    default = cls().config
    assert cls.config_from(asdict(default)) == default
    assert dataclasses.is_dataclass(default)
    assert cls.Config.__dataclass_params__.frozen  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        cls.Config(*asdict(default).values())  # keyword-only
    assert json.loads(json.dumps(cls().params())) == asdict(default)  # plain JSON values only


@pytest.mark.parametrize("name", NAMES)
def test_unknown_config_parameter_is_a_config_error_listing_the_allowed_ones(name: str) -> None:
    cls = ATTACKS[name]
    allowed = [f.name for f in dataclasses.fields(cls.Config)]
    with pytest.raises(ConfigError) as info:
        cls.config_from({"no_such_parameter": 1})
    assert "no_such_parameter" in str(info.value)
    assert all(a in str(info.value) for a in allowed)
    with pytest.raises(ConfigError):
        cls(no_such_parameter=1)
    with pytest.raises(ConfigError):
        cls(cls().config, **{allowed[0]: getattr(cls().config, allowed[0])})  # a config and parameters


@pytest.mark.parametrize("name", NAMES)
def test_metadata_cites_a_paper_and_maps_to_atlas_and_owasp(name: str) -> None:
    cls = ATTACKS[name]
    doc = cls.__doc__ or ""
    assert re.search(r"arXiv:\d{4}\.\d{4,5}|\b(19|20)\d{2}\b", doc), f"{name}: the docstring cites no paper"
    assert cls.paper.strip()
    assert re.search(r"arXiv:\d{4}\.\d{4,5}|\b(19|20)\d{2}\b", cls.paper)
    assert re.fullmatch(r"AML\.T\d{4}(\.\d{3})?", cls.atlas), cls.atlas
    assert re.fullmatch(r"ML\d{2}", cls.owasp) and 1 <= int(cls.owasp[2:]) <= 10, cls.owasp
    assert cls.name == name and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)
    assert isinstance(cls.goal, Goal) and isinstance(cls.knowledge, Knowledge)
    assert cls.needs and all(isinstance(c, Capability) for c in cls.needs)
    assert cls.modalities and all(isinstance(m, Modality) for m in cls.modalities)
    assert isinstance(cls.headline, str) and cls.headline
    assert cls.worse_when in ("higher", "lower")


@pytest.mark.parametrize("name", NAMES)
def test_least_knowledge_grants_what_the_attack_needs(name: str) -> None:
    cls = ATTACKS[name]
    tm = ThreatModel(knowledge=cls.knowledge, output="probabilities")
    assert not (cls.needs & VIEW_CAPS) - tm.grants()


# -- running ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "modality"), [(n, m) for n in NAMES for m in fitting(ATTACKS[n])])
def test_run_returns_a_finding_that_round_trips(name: str, modality: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = setups[modality]
    attack = small(cls)
    view = the_view(cls, setup)
    steps: list[tuple[int, int]] = []
    ctx = setup.context(cls, seed=11, job_id=f"{name}-job", progress=lambda done, total: steps.append((done, total)))
    finding = attack.run(view, setup.data, ctx)
    assert isinstance(finding, Finding)
    assert (finding.attack, finding.goal, finding.job_id, finding.seed) == (name, cls.goal, f"{name}-job", 11)
    assert (finding.knowledge, finding.output) == (view.knowledge, view.output)
    assert finding.status == "ok"
    assert finding.config == attack.params()
    assert finding.headline == cls.headline
    assert finding.headline in finding.metrics
    assert finding.worse_when == cls.worse_when
    assert isinstance(finding.metrics[finding.headline], int | float)
    assert (finding.atlas, finding.owasp, finding.paper) == (cls.atlas, cls.owasp, cls.paper)
    assert finding.queries == view.queries
    assert finding.summary
    assert finding.seconds >= 0
    assert Finding.from_json(finding.to_json()) == finding
    assert steps and steps[-1][0] == steps[-1][1]  # progress reaches its total


@pytest.mark.parametrize("name", NAMES)
def test_run_is_reproducible_for_a_seed(name: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    a = small(cls).run(the_view(cls, setup), setup.data, setup.context(cls, seed=4))
    b = small(cls).run(the_view(cls, setup), setup.data, setup.context(cls, seed=4))
    timing = cls.nondeterministic_metrics  # measured latencies are not reproducible
    assert {k: v for k, v in a.metrics.items() if k not in timing} == {
        k: v for k, v in b.metrics.items() if k not in timing
    }


@pytest.mark.parametrize("name", NAMES)
def test_evidence_goes_to_the_run_folder(name: str, setups: dict[str, Setup], tmp_path: Path) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    finding = small(cls).run(the_view(cls, setup), setup.data, setup.context(cls, run_dir=tmp_path, job_id="j1"))
    for rel in finding.evidence.values():
        assert not rel.startswith("/") and (tmp_path / rel).is_file()


@pytest.mark.parametrize(
    ("name", "other"), [(n, m) for n in NAMES for m in MODALITIES if fitting(ATTACKS[n])[:1] != [m]]
)
def test_data_of_another_modality_than_the_target_is_refused(name: str, other: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    view = the_view(cls, setup, budget=10_000)
    with pytest.raises(InputValidationError, match=rf"^data: expected {setup.target.modality.value} data"):
        small(cls).run(view, setups[other].data)
    assert view.queries == 0


UNTAKEN = [(n, m) for n in NAMES for m in MODALITIES if Modality(m) not in ATTACKS[n].modalities]


@pytest.mark.skipif(not UNTAKEN, reason="every registered attack takes every modality")
@pytest.mark.parametrize(("name", "modality"), UNTAKEN or [("-", "-")])
def test_a_target_of_a_modality_the_attack_does_not_take_is_unsupported(
    name: str, modality: str, setups: dict[str, Setup]
) -> None:
    cls = ATTACKS[name]
    setup = setups[modality]
    view = setup.target.view("white-box", "probabilities", budget=10_000)
    with pytest.raises(UnsupportedTargetError, match=modality):
        small(cls).run(view, setup.data)
    assert view.queries == 0


def _crop(data: Dataset) -> Dataset:
    """The same data with one feature (or one image column) less."""
    assert isinstance(data.x_train, torch.Tensor) and isinstance(data.x_test, torch.Tensor)
    return dataclasses.replace(data, x_train=data.x_train[..., :-1], x_test=data.x_test[..., :-1])


@pytest.mark.parametrize("name", NAMES)
def test_data_whose_shape_does_not_fit_the_target_is_refused(name: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    if setup.target.input_shape is None:
        pytest.skip(f"{name} runs on text here, which has no input shape")
    view = the_view(cls, setup, budget=10_000)
    with pytest.raises(InputValidationError) as info:
        small(cls).run(view, _crop(setup.data))
    assert "shape" in str(info.value)
    assert view.queries == 0


@pytest.mark.parametrize("name", NAMES)
def test_data_with_more_classes_than_the_target_is_refused(name: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    data = setup.data
    extra = dataclasses.replace(data, class_names=(*data.class_names, "extra"))
    extra = dataclasses.replace(extra, y_test=torch.where(data.y_test == 0, len(data.class_names), data.y_test))
    view = the_view(cls, setup, budget=10_000)
    with pytest.raises(InputValidationError, match="classes"):
        small(cls).run(view, extra)
    assert view.queries == 0


@pytest.mark.parametrize("name", NAMES)
def test_a_view_without_what_the_attack_needs_refuses_it(name: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    if not (cls.needs & VIEW_CAPS) - {Capability.LABELS}:
        pytest.skip(f"{name} needs only labels, which every view grants")
    setup = fitting_setup(cls, setups)
    view = setup.target.view("black-box", "labels", budget=10_000)
    with pytest.raises(AccessDeniedError):
        small(cls).run(view, setup.data)
    assert view.queries == 0


@pytest.mark.parametrize("name", [n for n in NAMES if Capability.GRADIENTS in ATTACKS[n].needs])
@pytest.mark.parametrize("knowledge", ["black-box", "grey-box"])
def test_gradient_attacks_are_refused_without_white_box(name: str, knowledge: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    with pytest.raises(AccessDeniedError, match="gradients"):
        small(cls).run(setup.target.view(knowledge, "probabilities"), setup.data)


@pytest.mark.parametrize("name", [n for n in NAMES if ATTACKS[n]().queries_needed(None) > 0])
def test_query_attacks_stop_at_the_budget(name: str, setups: dict[str, Setup]) -> None:
    cls = ATTACKS[name]
    setup = fitting_setup(cls, setups)
    attack = small(cls)
    budget = QueryBudget(attack.queries_needed(setup.target.input_shape) - 1)
    view = setup.target.view(cls.knowledge, "probabilities", budget=budget)
    with pytest.raises(BudgetExceededError):
        attack.run(view, setup.data)
    assert budget.used <= budget.limit
