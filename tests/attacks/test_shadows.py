"""Batched shadow training and its content-addressed cache (aisec.attacks.privacy.shadows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aisec.attacks.privacy import precision as precision_mod
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.attacks.privacy.shadows import shadow_models, stacked_phi, true_class_logit
from aisec.attacks.privacy.stacked import StackedMLP, half_masks, train_stacked
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError

RECIPE = TrainingRecipe(hidden=(32,), epochs=30, lr=1e-2, batch_size=32)


@pytest.fixture
def pool(digits: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(digits.x_train, torch.Tensor)
    return digits.x_train[:300], digits.y_train[:300]


def test_half_masks_put_every_point_in_half_the_models() -> None:
    m = half_masks(101, 8, torch.Generator().manual_seed(0))
    assert m.shape == (8, 101) and m.dtype == torch.bool
    assert (m.sum(0) == 4).all()
    assert set(m.sum(1).tolist()) <= {50, 51}
    assert not torch.equal(m[0], m[2])  # the pairs differ


def test_each_stacked_model_trains_only_on_its_own_half(pool: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = pool
    gen = torch.Generator().manual_seed(0)
    a, b, c = half_masks(300, 4, gen)[[0, 1, 2]]
    m1 = train_stacked(x, y, torch.stack([a, b]), 10, RECIPE, torch.Generator().manual_seed(3))
    m2 = train_stacked(x, y, torch.stack([a, c]), 10, RECIPE, torch.Generator().manual_seed(3))
    # model 0 saw the same data, init and batch order: what model 1 trained on does not touch it
    for w1, w2 in zip(m1.weights, m2.weights, strict=True):
        torch.testing.assert_close(w1[0], w2[0])
        assert not torch.allclose(w1[1], w2[1])
    # and each model memorises its own half better than the other half
    phi = torch.as_tensor(stacked_phi(m1, x, y))
    assert phi[0][a].mean() > phi[0][~a].mean() + 0.5
    assert phi[1][b].mean() > phi[1][~b].mean() + 0.5


def test_stacked_models_learn_as_well_as_ordinary_ones(
    digits: Dataset, pool: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = pool
    masks = half_masks(300, 4, torch.Generator().manual_seed(0))
    stacked = train_stacked(x, y, masks, 10, RECIPE, torch.Generator().manual_seed(0))
    single = train_mlp(x[masks[0]], y[masks[0]], 10, RECIPE, seed=0)
    with torch.no_grad():
        acc = (stacked.logits(digits.x_test).argmax(-1) == digits.y_test).double().mean(1)
        acc_single = (single(digits.x_test).argmax(1) == digits.y_test).double().mean()
    assert acc.min() > 0.8 and abs(float(acc.mean()) - float(acc_single)) < 0.05


def test_logits_of_a_stacked_model_are_those_of_its_layers() -> None:
    gen = torch.Generator().manual_seed(0)
    m = StackedMLP.init(3, [6, 5, 4], gen, torch.device("cpu"))
    x = torch.rand(7, 6, generator=gen)
    k = 2
    ref = torch.relu(x @ m.weights[0][k] + m.biases[0][k]) @ m.weights[1][k] + m.biases[1][k]
    torch.testing.assert_close(m.logits(x)[k], ref)


def test_true_class_logit_is_log_odds_and_stable() -> None:
    p = torch.tensor([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], dtype=torch.float32)
    phi = true_class_logit(p, torch.tensor([0, 0]))
    assert phi[0].item() == pytest.approx(float(torch.log(torch.tensor(0.7 / 0.3))), rel=1e-6)
    assert torch.isfinite(phi).all() and phi[1] > 100


def test_shadows_are_cached_by_content(
    pool: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    x, y = pool
    first = shadow_models(x, y, 10, RECIPE, 4, seed=1)
    assert not first.from_cache and first.seconds_per_shadow > 0
    assert (tmp_path / "shadows" / f"{first.key}.pt").is_file()
    again = shadow_models(x, y, 10, RECIPE, 4, seed=1)
    assert again.from_cache and again.key == first.key
    assert again.seconds_per_shadow == pytest.approx(first.seconds_per_shadow)
    assert torch.equal(again.in_mask, first.in_mask)
    for w1, w2 in zip(first.model.weights, again.model.weights, strict=True):
        assert torch.equal(w1, w2)
    # another seed, recipe, count or data is another entry
    keys = {
        shadow_models(x, y, 10, RECIPE, 4, seed=2, cache=False).key,
        shadow_models(x, y, 10, TrainingRecipe(hidden=(16,), epochs=2), 4, seed=1, cache=False).key,
        shadow_models(x, y, 10, RECIPE, 2, seed=1, cache=False).key,
        shadow_models(x[:-1], y[:-1], 10, RECIPE, 4, seed=1, cache=False).key,
    }
    assert len(keys) == 4 and first.key not in keys
    assert len(list((tmp_path / "shadows").iterdir())) == 1  # cache=False writes nothing


def test_a_broken_cache_file_is_retrained(
    pool: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    x, y = pool
    recipe = TrainingRecipe(hidden=(8,), epochs=1)
    first = shadow_models(x, y, 10, recipe, 2, seed=0)
    (tmp_path / "shadows" / f"{first.key}.pt").write_bytes(b"not a torch file")
    again = shadow_models(x, y, 10, recipe, 2, seed=0)
    assert not again.from_cache
    assert torch.equal(again.model.weights[0], first.model.weights[0])  # seeded: the same models


def test_recipe_and_arguments_are_checked(pool: tuple[torch.Tensor, torch.Tensor]) -> None:
    with pytest.raises(ConfigError, match="hidden"):
        TrainingRecipe(hidden=(0,))
    with pytest.raises(ConfigError, match="architecture"):
        TrainingRecipe(architecture="resnet")
    with pytest.raises(ConfigError, match="epochs"):
        TrainingRecipe(epochs=0)
    assert TrainingRecipe(hidden=[4, 4]).hidden == (4, 4)  # type: ignore[arg-type]
    x, y = pool
    with pytest.raises(InputValidationError, match="k"):
        shadow_models(x, y, 10, RECIPE, 0, seed=0, cache=False)


def test_hand_written_gradients_train_like_autograd(pool: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One stacked model, replayed with nn.Linear layers, autograd and torch's Adam: the same weights."""
    x, y = pool
    x, y = x[:100], y[:100]
    recipe = TrainingRecipe(hidden=(12, 8), epochs=3, lr=1e-2, batch_size=32, weight_decay=1e-3)
    mask = torch.ones(1, 100, dtype=torch.bool)
    stacked = train_stacked(x, y, mask, 10, recipe, torch.Generator(), seeds=[7])
    # the replay draws from the generator exactly as train_stacked does for one model
    gen = torch.Generator().manual_seed(7)
    layers = []
    for fan_in, fan_out in ((64, 12), (12, 8), (8, 10)):
        bound = 1.0 / fan_in**0.5
        w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(1, fan_out, generator=gen) * 2 - 1) * bound
        layers.append((w.requires_grad_(), b.requires_grad_()))
    torch.randint(100, (0,), generator=gen)  # padding: none needed
    params = [p for pair in layers for p in pair]
    opt = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3, foreach=False)
    xf = x.reshape(100, -1)
    for _ in range(3):
        order = torch.arange(100)[torch.randperm(100, generator=gen)]
        for s in range(0, 100, 32):
            h = xf[order[s : s + 32]]
            for i, (w, b) in enumerate(layers):
                h = h @ w + b
                h = torch.relu(h) if i < 2 else h
            loss = torch.nn.functional.cross_entropy(h, y[order[s : s + 32]])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for i, (w, b) in enumerate(layers):
        torch.testing.assert_close(stacked.weights[i][0], w.detach(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stacked.biases[i][0], b.detach(), rtol=1e-4, atol=1e-5)


def test_seeds_and_padding_are_checked(pool: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = pool
    masks = half_masks(300, 2, torch.Generator().manual_seed(0))
    with pytest.raises(InputValidationError, match="seeds"):
        train_stacked(x, y, masks, 10, RECIPE, torch.Generator(), seeds=[1])
    with pytest.raises(InputValidationError, match="pad_to"):
        train_stacked(x, y, masks, 10, RECIPE, torch.Generator(), pad_to=10)


needs_bf16 = pytest.mark.skipif(
    precision_mod.bf16_matmul_speedup() < 1.5, reason="no fast bfloat16 matmul on this CPU (AVX512-BF16 / AMX)"
)


@needs_bf16
def test_bf16_shadows_learn_and_memorise_like_fp32_ones(
    digits: Dataset, pool: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = pool
    masks = half_masks(300, 4, torch.Generator().manual_seed(0))
    fp32 = train_stacked(x, y, masks, 10, RECIPE, torch.Generator().manual_seed(0))
    bf16 = train_stacked(x, y, masks, 10, RECIPE, torch.Generator().manual_seed(0), precision="bf16")
    assert all(w.dtype == torch.float32 for w in bf16.parameters())  # fp32 master weights
    assert not torch.equal(fp32.weights[0], bf16.weights[0])  # it did train differently
    with torch.no_grad():
        acc = [(m.logits(digits.x_test).argmax(-1) == digits.y_test).double().mean(1) for m in (fp32, bf16)]
    assert acc[1].min() > 0.8 and abs(float(acc[1].mean() - acc[0].mean())) < 0.03
    # the membership signal (own half against the other half) survives the lower precision
    gap = [
        (p[masks].mean() - p[~masks].mean()).item()
        for p in (torch.as_tensor(stacked_phi(m, x, y)) for m in (fp32, bf16))
    ]
    assert gap[1] > 0.5 and abs(gap[1] - gap[0]) < 0.25 * gap[0]


@needs_bf16
def test_bf16_is_part_of_the_cache_key_and_the_same_in_chunks(
    pool: tuple[torch.Tensor, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    x, y = pool
    recipe = TrainingRecipe(hidden=(16,), epochs=3)
    fp32 = shadow_models(x, y, 10, recipe, 4, seed=0, precision="fp32")
    bf16 = shadow_models(x, y, 10, recipe, 4, seed=0, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16") and fp32.key != bf16.key
    assert bf16.cost()["shadow_precision"] == "bf16"
    again = shadow_models(x, y, 10, recipe, 4, seed=0)  # the default, "auto", resolves to bf16 here
    assert again.from_cache and again.key == bf16.key and again.precision == "bf16"
    chunked = shadow_models(x, y, 10, recipe, 6, seed=0, precision="bf16", cache=False, chunks=2)
    whole = shadow_models(x, y, 10, recipe, 6, seed=0, precision="bf16", cache=False)
    for a, b in zip(chunked.model.parameters(), whole.model.parameters(), strict=True):
        assert torch.equal(a, b)  # bit-identical whatever the split


def test_bf16_falls_back_to_fp32_where_it_is_not_faster(
    pool: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    x, y = pool
    monkeypatch.setattr(precision_mod, "bf16_matmul_speedup", lambda: 1.0)
    recipe = TrainingRecipe(hidden=(8,), epochs=1)
    with caplog.at_level("INFO", logger=precision_mod.__name__):
        s = shadow_models(x, y, 10, recipe, 2, seed=0, cache=False, precision="bf16")
    assert s.precision == "fp32" and "training in fp32" in caplog.text
    assert s.key == shadow_models(x, y, 10, recipe, 2, seed=0, cache=False).key
    assert precision_mod.resolve_precision("auto") == "fp32"
    with pytest.raises(ConfigError, match="precision"):
        precision_mod.resolve_precision("fp16")
