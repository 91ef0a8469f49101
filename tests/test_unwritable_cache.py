"""A cache folder that cannot be written: every cached computation still returns its result; the demo says why it stops.

``$AISEC_CACHE`` names a regular file here, so nothing can be created under it, whatever the user's rights (a
read-only folder would not stop root, who runs CI).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from aisec import demo
from aisec.attacks.privacy.recipe import TrainingRecipe
from aisec.attacks.privacy.shadows import shadow_models
from aisec.data import load_font_digits
from aisec.data.font_digits import drawn
from aisec.defenses.training.dp_public import pretrain
from aisec.errors import ConfigError
from tests.cli.conftest import cli_env, run_aisec


@pytest.fixture
def unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    monkeypatch.setenv("AISEC_CACHE", str(blocker / "cache"))
    return blocker / "cache"


def test_shadows_pretraining_and_font_digits_are_computed_without_a_cache(
    unwritable: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="aisec.core.files"):
        x, y = drawn(40, seed=11)
        assert x.shape == (40, 1, 8, 8) and len(y) == 40
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        before = [p.detach().clone() for p in net.parameters()]
        seconds, hit = pretrain(net, load_font_digits(n=200, seed=11), epochs=1, seed=0)
        assert hit is False and seconds > 0
        assert not all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))  # it trained
        gen = torch.Generator().manual_seed(0)
        xs, ys = torch.rand(40, 6, generator=gen), torch.randint(0, 3, (40,), generator=gen)
        shadows = shadow_models(xs, ys, 3, TrainingRecipe(hidden=(8,), epochs=2), 2, seed=0)
        assert shadows.from_cache is False and shadows.in_mask.shape == (2, 40)
    for what in ("font digits", "public pretraining", "shadow"):
        assert f"could not cache {what} at" in caplog.text, what
    assert not unwritable.exists()


def test_the_demo_stops_with_one_line_naming_the_setting(unwritable: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"AISEC_CACHE: cannot create .* set AISEC_CACHE to a writable folder"):
        demo.cache_dir()
    res = run_aisec(["demo", "--out", tmp_path / "demo"], cwd=tmp_path, env=cli_env(AISEC_CACHE=str(unwritable)))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "set AISEC_CACHE to a writable folder" in res.stderr + res.stdout
