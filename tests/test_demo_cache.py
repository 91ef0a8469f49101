"""The demo's model cache: a damaged entry is trained again, never loaded into a crash."""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import pytest
import torch

from aisec import demo

SMS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection"


def _damage(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a torn write, as a crash in an older version could leave


def test_a_damaged_cached_torch_model_is_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    path = demo.digits_cnn()
    reference = torch.jit.load(str(path))(torch.ones(1, 1, 8, 8))
    _damage(path)
    with pytest.raises(RuntimeError):
        torch.jit.load(str(path))

    with caplog.at_level(logging.WARNING, logger="aisec.demo"):
        again = demo.digits_cnn()
    assert again == path
    assert torch.allclose(torch.jit.load(str(again))(torch.ones(1, 1, 8, 8)), reference, atol=1e-5)  # seeded
    assert any("unreadable" in r.getMessage() and "digits-cnn" in r.getMessage() for r in caplog.records)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.skipif(not SMS.is_file(), reason="the SMS Spam Collection is not at ../shared/data")
def test_a_damaged_cached_spam_filter_is_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    path = demo.spam_filter(SMS)
    _damage(path)
    with caplog.at_level(logging.WARNING, logger="aisec.demo"):
        again = demo.spam_filter(SMS)
    assert again == path
    assert joblib.load(again).predict(["WINNER!! claim your free prize now, call 09061701461"])[0] == 1
    assert any("unreadable" in r.getMessage() and "spam-filter" in r.getMessage() for r in caplog.records)
