"""Hash pinning: a lock file of model hashes, checked before a model is loaded.

``aisec.lock.json`` maps each model file's path, relative to the lock file's folder and written
with forward slashes, to its SHA-256 hex digest::

    {
      "models/filter.joblib": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    }

A model listed in the nearest lock file (in its folder or a parent folder) must match its pin,
or loading it raises :class:`~aisec.errors.UntrustedFileError`. SHA-256 is FIPS 180-4.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from aisec.errors import ConfigError, UntrustedFileError

LOCK_NAME = "aisec.lock.json"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def normalize_sha256(value: str) -> str:
    """Lower-case a hex digest (a ``sha256:`` prefix is allowed); :class:`ConfigError` if malformed."""
    text = value.strip().lower().removeprefix("sha256:")
    if not _HEX64.match(text):
        raise ConfigError(f"expect_sha256: {value!r} is not a SHA-256 hex digest (64 hex characters)")
    return text


def lock_key(path: str | Path, lock_path: str | Path) -> str:
    """The key of ``path`` in the lock file: relative to the lock file's folder, forward slashes."""
    rel = os.path.relpath(Path(path).resolve(), Path(lock_path).resolve().parent)
    return Path(rel).as_posix()


def write_lock(lock_path: str | Path, files: Iterable[str | Path]) -> dict[str, str]:
    """Write (replace) a lock file pinning ``files``; returns the mapping written."""
    lock_path = Path(lock_path)
    entries = {lock_key(f, lock_path): sha256_file(f) for f in files}
    lock_path.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n", encoding="utf-8")
    return entries


def read_lock(lock_path: str | Path) -> dict[str, str]:
    """Read a lock file; :class:`ConfigError` when it is missing or not ``{path: sha256}``."""
    lock_path = Path(lock_path)
    try:
        data = json.loads(lock_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"lock: no such file: {lock_path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"lock: {lock_path} is not a JSON lock file ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"lock: {lock_path} must map relative paths to SHA-256 digests")
    return {k: normalize_sha256(v) for k, v in data.items()}


def verify(path: str | Path, expected_sha256: str) -> str:
    """Check a file against its pinned SHA-256; returns the digest.

    Raises
    ------
    UntrustedFileError
        When the digest differs; the message gives both hashes.
    """
    expected = normalize_sha256(expected_sha256)
    actual = sha256_file(path)
    if actual != expected:
        raise UntrustedFileError(f"{path}: sha256 {actual} does not match the pinned sha256 {expected}")
    return actual


def find_lock(path: str | Path) -> Path | None:
    """The nearest ``aisec.lock.json`` in the file's folder or one of its parents."""
    folder = Path(path).resolve().parent
    for candidate in (folder, *folder.parents):
        lock = candidate / LOCK_NAME
        if lock.is_file():
            return lock
    return None


def verify_pinned(path: str | Path) -> str | None:
    """Verify ``path`` against the nearest lock file that lists it; ``None`` when none does."""
    lock = find_lock(path)
    if lock is None:
        return None
    expected = read_lock(lock).get(lock_key(path, lock))
    if expected is None:
        return None
    return verify(path, expected)
