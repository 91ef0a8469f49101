"""``aisec harden --defense dp-sgd`` from the command line, public pretraining included (the real CLI, a child process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aisec.data import load_digits
from aisec.demo import train_classifier
from tests.cli.conftest import cli_env, run_aisec, write_spec


@pytest.mark.slow
@pytest.mark.integration
def test_dp_sgd_with_public_pretraining_reports_its_guarantee_and_the_audit_beside_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    train_classifier(net, load_digits(seed=0), epochs=10, lr=3e-3, batch_size=64, seed=0)
    torch.save(net.eval(), tmp_path / "mlp.pt")  # a pickled module: Opacus needs the layers, not TorchScript
    spec = write_spec(
        tmp_path / "spec.yaml",
        {
            "name": "cli-dp",
            "target": {"kind": "torch", "path": str(tmp_path / "mlp.pt"), "trust": True},
            "data": {"kind": "digits", "seed": 0},
            "threat_model": {"knowledge": "grey-box", "needs": {"privacy": "high"}},
            "attacks": [{"name": "dp-audit", "shadows": 4}],
        },
    )
    env = cli_env(AISEC_CACHE=str(tmp_path / "cache"))
    args = ["harden", spec, "--defense", "dp-sgd", "--param", "epsilon=3", "--param", "public=font_digits",
            "--param", "public_epochs=1", "--param", "epochs=10", "--out", tmp_path / "run"]  # fmt: skip
    res = run_aisec(args, cwd=tmp_path, env=env, timeout=280)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "run" / "defended" / "harden.json").read_text(encoding="utf-8"))
    info = summary["defense_info"]
    assert summary["params"]["public"] == "font_digits" and info["target_epsilon"] == 3
    assert 2.9 <= info["epsilon"] <= 3.0 and info["lr"] == 0.005  # the fine-tuning rate for a pretrained start
    assert info["public"]["data"] == "font_digits" and info["public"]["epochs"] == 1
    assert info["public"]["cache_hit"] is False and (tmp_path / "cache" / "public").is_dir()
    assert (
        summary["clean_accuracy"]["after"] > 0.8
    )  # a working classifier (0.86 measured: one short pretraining epoch; non-private 0.94)
    assert "dp-sgd reports:" in res.stdout and "public.data=font_digits" in res.stdout
    # the silent seconds say what they are: the first run draws the public digits and pretrains on them
    assert "drawing 60000 public font digits" in res.stdout
    assert "dp-sgd: pretraining on font_digits for 1 epochs without DP" in res.stdout
    (audit,) = [json.loads(line) for line in (tmp_path / "run" / "defended" / "results.jsonl").read_text().splitlines()]
    assert audit["attack"] == "dp-audit" and audit["metrics"]["accountant_epsilon"] == info["epsilon"]
    assert audit["metrics"]["epsilon_lower_bound"] <= info["epsilon"]  # the audit's lower bound beside the upper bound

    # the defaults ("auto") pretrain on font digits for scikit-learn's digits, and reuse the cached pretraining
    auto = run_aisec(
        [*args[:6], "--param", "epochs=2", "--param", "public_epochs=1", "--out", tmp_path / "auto"],
        cwd=tmp_path, env=env, timeout=280,
    )  # fmt: skip
    assert auto.returncode == 0, auto.stderr
    info = json.loads((tmp_path / "auto" / "defended" / "harden.json").read_text(encoding="utf-8"))["defense_info"]
    assert info["public"]["data"] == "font_digits" and info["public"]["chosen"] == "auto"
    assert info["public"]["cache_hit"] is True and "hints" not in info
    assert "public.chosen=auto" in auto.stdout
    assert "drawing" not in auto.stdout and "pretraining on" not in auto.stdout  # both served by the cache

    # the same images from an .npz declare no domain: nothing is used unasked, and the CLI says what fits
    digits = load_digits(seed=0)
    arrays = {k: getattr(digits, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
    np.savez(tmp_path / "digits.npz", **arrays)
    npz_spec = write_spec(
        tmp_path / "npz.yaml",
        {
            "name": "cli-dp-npz",
            "target": {"kind": "torch", "path": str(tmp_path / "mlp.pt"), "trust": True},
            "data": {"kind": "npz", "path": str(tmp_path / "digits.npz")},
            "threat_model": {"knowledge": "grey-box", "needs": {"privacy": "high"}},
            "attacks": [{"name": "dp-audit", "shadows": 4}],
        },
    )
    plain = run_aisec(
        ["harden", npz_spec, *args[2:6], "--param", "epochs=2", "--out", tmp_path / "plain"],
        cwd=tmp_path, env=env, timeout=280,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    info = json.loads((tmp_path / "plain" / "defended" / "harden.json").read_text(encoding="utf-8"))["defense_info"]
    assert info["public"] is None and "public=font_digits" in info["hints"][0]
    assert "hint: public pretraining on font_digits fits these data" in plain.stdout

    bad = run_aisec([*args[:6], "--param", "public=mnist"], cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "dp-sgd.public: 'mnist' is not a public set; allowed: auto, font_digits or null" in bad.stderr + bad.stdout
