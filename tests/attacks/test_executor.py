"""Executors (aisec.core.executor) and shadow training through them: same seed, same shadows."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy.lira import LiRA
from aisec.attacks.privacy.recipe import TrainingRecipe
from aisec.attacks.privacy.shadows import ShadowSet, shadow_models
from aisec.core.executor import Executor, LocalExecutor, ProcessExecutor, make_executor
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError, MissingDependencyError
from aisec.targets import TorchTarget
from aisec.targets.recipe import SklearnRecipe

RECIPE = TrainingRecipe(hidden=(16,), epochs=3, lr=1e-2, batch_size=32)
K = 6


@pytest.fixture(scope="module")
def pool(digits: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(digits.x_train, torch.Tensor)
    return digits.x_train[:200], digits.y_train[:200]


@pytest.fixture(scope="module")
def reference(pool: tuple[torch.Tensor, torch.Tensor]) -> ShadowSet:
    x, y = pool
    return shadow_models(x, y, 10, RECIPE, K, seed=5, cache=False)


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(2) as ex:
        yield ex


def same(a: ShadowSet, b: ShadowSet) -> bool:
    params = zip(a.model.parameters(), b.model.parameters(), strict=True)
    return torch.equal(a.in_mask, b.in_mask) and all(torch.equal(u, v) for u, v in params)


class Counting(LocalExecutor):
    """In-process, counting what it is given."""

    def __init__(self) -> None:
        self.items = 0

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        self.items += len(items)
        return super().map(fn, items)


def test_the_split_into_chunks_does_not_change_the_shadows(
    pool: tuple[torch.Tensor, torch.Tensor], reference: ShadowSet
) -> None:
    x, y = pool
    for chunks in (2, 3, K):
        other = shadow_models(x, y, 10, RECIPE, K, seed=5, cache=False, chunks=chunks)
        assert other.chunks == chunks and same(reference, other)
    assert reference.chunks == 1 and reference.executor == "local"
    assert not same(reference, shadow_models(x, y, 10, RECIPE, K, seed=6, cache=False))


@pytest.mark.integration
def test_local_and_process_executors_train_identical_shadows(
    pool: tuple[torch.Tensor, torch.Tensor], reference: ShadowSet, processes: ProcessExecutor
) -> None:
    x, y = pool
    par = shadow_models(x, y, 10, RECIPE, K, seed=5, cache=False, executor=processes)
    assert par.executor == "process" and par.chunks == 2
    assert same(reference, par)
    cost = par.cost()
    assert cost["shadow_seconds_total"] > 0 and cost["shadow_worker_seconds_per_model"] > 0
    assert cost["shadow_seconds_per_model"] == pytest.approx(cost["shadow_seconds_total"] / K)
    assert cost["shadow_cache_hit"] is False


@pytest.mark.integration
def test_lira_trains_its_shadows_on_the_context_executor(
    overfit_small: tuple[TorchTarget, Dataset], processes: ProcessExecutor
) -> None:
    target, data = overfit_small
    attack = LiRA(n_samples=40, shadows=4, hidden=[16], epochs=5, cache=False, n_bootstrap=20)
    counting = Counting()
    local = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=2, executor=counting))
    assert counting.items == 1  # one chunk for a one-worker executor
    par = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=2, executor=processes))
    assert "process executor, 2 chunks" in par.summary and "local executor" in local.summary
    assert par.metrics == local.metrics


@pytest.fixture(scope="module")
def overfit_small(digits: Dataset) -> tuple[TorchTarget, Dataset]:
    from aisec.attacks.privacy.recipe import train_mlp

    net = train_mlp(digits.x_train[:100], digits.y_train[:100], 10, RECIPE, seed=0)
    target = TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0), name="small-mlp")
    return target, digits


def test_make_executor_names_and_checks() -> None:
    assert isinstance(make_executor(), LocalExecutor) and make_executor("local").workers == 1
    ex = make_executor("process", workers=3)
    assert isinstance(ex, ProcessExecutor) and ex.workers == 3
    assert ex.describe() == {"executor": "process", "workers": 3, "threads_per_worker": 1}
    ex.close()  # never started: nothing to free
    assert make_executor("local").map(abs, [-1, 2]) == [1, 2]
    with pytest.raises(ConfigError, match=r"^executor: 'dask' is not allowed; allowed: local, process, ray$"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="workers"):
        make_executor("process", workers=0)
    with pytest.raises(ConfigError, match="start_method"):
        ProcessExecutor(2, start_method="fork")


@pytest.mark.integration
def test_an_error_in_a_worker_reaches_the_caller_as_itself() -> None:
    # before aisec's errors pickled, this broke the pool ("BrokenProcessPool") and lost the message
    from tests.helpers import refuse_empty

    with ProcessExecutor(1) as ex:
        with pytest.raises(InputValidationError, match="masks: expected every model with at least one"):
            ex.map(refuse_empty, [1, 0])
        assert ex.map(refuse_empty, [2, 3]) == [2, 3]  # the pool still works


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(MissingDependencyError, match=r"aisec\[ray\]"):
        make_executor("ray")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (extra: aisec[ray])")
def test_a_local_ray_cluster_trains_the_same_shadows(
    pool: tuple[torch.Tensor, torch.Tensor], reference: ShadowSet
) -> None:
    import ray

    if ray.is_initialized():  # pragma: no cover - another test left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ex: Executor = make_executor("ray")  # joins the running cluster
        assert ex.workers == 2
        x, y = pool
        via_ray = shadow_models(x, y, 10, RECIPE, K, seed=5, cache=False, executor=ex)
        assert via_ray.executor == "ray" and via_ray.chunks == 2
        assert same(reference, via_ray)
        # shadows by the target's own training (a random forest) on the cluster, as here
        from aisec.attacks.privacy.recipe_shadows import recipe_shadows

        forest = _forest_recipe()
        here, _ = recipe_shadows(forest, x, y, 2, seed=3)
        there, notes = recipe_shadows(forest, x, y, 2, seed=3, executor=ex)
        assert (there.executor, there.chunks, notes) == ("ray", 1, [])
        assert torch.equal(here.model.logits(x), there.model.logits(x))
        from tests.helpers import refuse_empty

        with pytest.raises(InputValidationError, match=r"^masks: expected every model") as raised:
            ex.map(refuse_empty, [0])
        assert type(raised.value) is InputValidationError  # Ray's wrapper removed: one line for the CLI
        ex.close()  # did not start the cluster: leaves it running
        assert ray.is_initialized()
    finally:
        ray.shutdown()


def _forest_recipe() -> SklearnRecipe:
    """The training process of a small seeded random forest on digits: shadows of it are picklable to workers."""
    from sklearn.ensemble import RandomForestClassifier

    return SklearnRecipe(
        RandomForestClassifier(n_estimators=10, random_state=0), modality="image", input_shape=(1, 8, 8)
    )


def test_shadows_by_the_targets_own_training_run_on_the_executor(
    pool: tuple[torch.Tensor, torch.Tensor], processes: ProcessExecutor
) -> None:
    """A random forest's shadows, fitted two at a time by worker processes, are the ones fitted here one by one."""
    from aisec.attacks.privacy.recipe_shadows import recipe_shadows

    x, y = pool
    recipe = _forest_recipe()
    steps: list[tuple[int, int]] = []
    here, notes_here = recipe_shadows(recipe, x, y, 4, seed=3)
    there, notes_there = recipe_shadows(
        recipe, x, y, 4, seed=3, progress=lambda d, k: steps.append((d, k)), executor=processes
    )
    assert notes_here == notes_there == []
    assert (here.executor, here.chunks, there.executor, there.chunks) == ("local", 4, "process", 2)
    assert steps == [(2, 4), (4, 4)]  # a wave of two fits at a time
    assert torch.equal(here.in_mask, there.in_mask)
    assert torch.equal(here.model.logits(x), there.model.logits(x))


def test_a_trainer_the_workers_cannot_run_is_trained_here_and_said(
    pool: tuple[torch.Tensor, torch.Tensor], processes: ProcessExecutor
) -> None:
    from aisec.attacks.privacy.recipe import train_mlp
    from aisec.attacks.privacy.recipe_shadows import recipe_shadows
    from aisec.targets.recipe import TorchRecipe

    def trainer(x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.nn.Module:  # a closure: it cannot be pickled
        return train_mlp(x, y, 10, RECIPE, seed=seed)

    x, y = pool
    recipe = TorchRecipe(trainer, n_classes=10, input_shape=(1, 8, 8))
    shadows, notes = recipe_shadows(recipe, x, y, 2, seed=3, executor=processes)
    assert shadows.executor == "local" and shadows.model.k == 2
    assert len(notes) == 1 and "the process executor could not run the target's training" in notes[0]
