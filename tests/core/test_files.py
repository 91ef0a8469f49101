"""Atomic writes and tolerant cache reads (aisec.core.files)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from aisec.core.files import atomic_path, cache_root, load_cached, store_cached, write_text_atomic


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_finished_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "summary.json"  # missing folders are created
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text(encoding="utf-8") == "new"
    assert _leftovers(path.parent) == []


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(path) as tmp:
        tmp.write_bytes(b"half a fi")
        raise RuntimeError("disk full")
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert _leftovers(tmp_path) == []


def test_two_writers_of_one_file_never_share_a_temporary(tmp_path: Path) -> None:
    path = tmp_path / "entry.pt"
    with atomic_path(path) as a, atomic_path(path) as b:
        assert a != b and a.parent == b.parent == tmp_path
        a.write_text("a", encoding="utf-8")
        b.write_text("b", encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "a"  # the outer block ends last: the last rename wins, whole
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
def test_a_secret_is_created_private_and_other_files_follow_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "keys.json", "{}", private=True, durable=True)
        write_text_atomic(tmp_path / "summary.json", "{}")
        os.umask(0o277)  # an odd umask neither locks the owner out of a secret nor widens it
        with atomic_path(tmp_path / "keys.json", private=True) as tmp:
            assert tmp.stat().st_mode & 0o777 == 0o600  # writable before the writer opens it (root would not notice)
            tmp.write_text('{"keys": []}', encoding="utf-8")
    finally:
        os.umask(umask)
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys.json").read_text(encoding="utf-8") == '{"keys": []}'
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644


def test_an_unreadable_cache_entry_is_logged_and_reported_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "entry.pt"
    assert load_cached(path, dict, "test") is None  # missing: no warning
    torch.save({"w": torch.arange(4)}, path)
    assert torch.equal(load_cached(path, lambda s: s["w"], "test"), torch.arange(4))
    with caplog.at_level(logging.WARNING, logger="aisec.core.files"):
        assert load_cached(path, lambda s: s["bias"], "test") is None  # not what the caller stored
        path.write_bytes(path.read_bytes()[:40])  # truncated
        assert load_cached(path, dict, "test") is None
    assert caplog.text.count("ignoring unreadable test cache") == 2


def test_the_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("AISEC_CACHE")
    assert cache_root() == Path.home() / ".cache" / "aisec"


def test_a_cache_that_cannot_be_written_is_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a file where the cache folder should be: unwritable even for root (chmod would not stop root, who runs CI)
    (tmp_path / "cache").write_text("not a folder", encoding="utf-8")
    path = tmp_path / "cache" / "public" / "entry.pt"
    with caplog.at_level(logging.WARNING, logger="aisec.core.files"):
        assert store_cached(path, lambda tmp: torch.save({"w": torch.ones(2)}, tmp), "test") is False
    assert "could not cache test at" in caplog.text and str(path) in caplog.text
    good = tmp_path / "ok" / "entry.pt"
    assert store_cached(good, lambda tmp: torch.save({"w": torch.ones(2)}, tmp), "test") is True
    assert torch.equal(load_cached(good, lambda s: s["w"], "test"), torch.ones(2)) and _leftovers(good.parent) == []
