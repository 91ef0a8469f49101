"""Public digits rendered from matplotlib's bundled fonts (aisec.data.font_digits)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from aisec.data import Dataset, font_digits, load_font_digits
from aisec.data.font_digits import FONTS, STROKES, cache_path, drawn, glyphs, render
from aisec.errors import InputValidationError


def test_every_bundled_font_draws_every_digit() -> None:
    bank, labels = glyphs()
    assert bank.shape == (len(FONTS) * 10 * len(STROKES), 1, 96, 96)
    assert torch.equal(torch.bincount(labels), torch.full((10,), len(FONTS) * len(STROKES)))
    ink = bank.flatten(1).mean(1)
    assert ink.min() > 0.02 and ink.max() < 0.6  # a glyph, neither an empty canvas nor a filled box


def test_the_set_is_shaped_like_load_digits_and_seeded(digits: Dataset) -> None:
    fonts = load_font_digits(n=1000, test_size=0.2, seed=3)
    assert fonts.x_train.shape == (800, 1, 8, 8) and fonts.x_test.shape == (200, 1, 8, 8)
    assert fonts.input_shape == digits.input_shape and fonts.class_names == digits.class_names
    assert fonts.clip == (0.0, 1.0) and fonts.x_train.dtype == torch.float32
    sixteenths = fonts.x_train * 16  # each pixel is the share of its 4x4 block that is ink, like digits / 16
    assert torch.equal(sixteenths, sixteenths.round()) and fonts.x_train.min() >= 0 and fonts.x_train.max() <= 1
    assert torch.bincount(fonts.y_train, minlength=10).min() > 40  # every digit, drawn uniformly
    assert torch.equal(load_font_digits(n=1000, test_size=0.2, seed=3).x_train, fonts.x_train)
    assert not torch.equal(load_font_digits(n=1000, test_size=0.2, seed=4).x_train, fonts.x_train)


def test_a_model_of_the_font_digits_reads_handwriting(digits: Dataset) -> None:
    # measured: logistic regression on 2,400 font digits, seeds 0-2, scores 0.55-0.60 on the handwritten test split
    fonts = load_font_digits(n=3000, seed=0)
    model = LogisticRegression(max_iter=2000).fit(fonts.x_train.flatten(1).numpy(), fonts.y_train.numpy())
    assert isinstance(digits.x_test, torch.Tensor)
    assert model.score(digits.x_test.flatten(1).numpy(), digits.y_test.numpy()) > 0.45  # chance is 0.10


def test_bad_sizes_are_input_errors() -> None:
    with pytest.raises(InputValidationError, match="n"):
        load_font_digits(n=5)
    with pytest.raises(InputValidationError, match="test_size"):
        load_font_digits(n=100, test_size=1.0)


def test_the_drawn_set_is_cached_exactly_and_a_damaged_entry_is_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    fresh = render(300, torch.Generator().manual_seed(5))
    first = load_font_digits(n=300, test_size=0.1, seed=5)
    path = cache_path(300, 5)
    assert path.is_file() and torch.load(path, weights_only=True)["ink"].dtype == torch.uint8
    assert torch.equal(torch.cat([first.x_train, first.x_test]), fresh[0])  # drawn as render draws it

    path.write_bytes(b"\x00" * 64)  # a torn entry is not loaded: it is drawn again and replaced
    with caplog.at_level(logging.WARNING, logger="aisec.core.files"):
        again = drawn(300, 5)
    assert any("font digits" in r.getMessage() for r in caplog.records)
    assert torch.equal(again[0], fresh[0]) and torch.equal(again[1], fresh[1])

    torch.save({"ink": torch.zeros(300, 1, 8, 8, dtype=torch.uint8).fill_(200), "y": fresh[1].byte()}, path)
    assert torch.equal(drawn(300, 5)[0], fresh[0])  # counts above 16 are not ink counts: drawn again
    monkeypatch.setattr(font_digits, "render", _no_drawing)  # from here on only the cache can serve
    cached = drawn(300, 5)
    assert torch.equal(cached[0], fresh[0]) and torch.equal(cached[1], fresh[1])
    with pytest.raises(AssertionError, match="drew"):
        drawn(301, 5)  # another size: another key, drawn anew


def _no_drawing(*args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
    raise AssertionError("drew digits where the cache should have served them")
