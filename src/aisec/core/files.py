"""Files aisec keeps: the cache folder, writes that never leave a torn file, cache reads that never crash.

Every file aisec writes in place of an older one (cached models and shadow sets, a run's summary, a
hardening result, the gateway's key file) is first written to a temporary file of its own beside the
destination, then renamed over it with :func:`os.replace`, which is atomic within one file system: a
reader sees the old file or the new one, never half of one, and two processes filling the same cache
entry never write into the same temporary file. A cache entry that cannot be read (a disk error, a
file from an incompatible version) is logged and recomputed, not raised; one that cannot be written (a
read-only or full disk, ``$AISEC_CACHE`` naming a file) is logged and skipped: the computation that made it
is never lost to its cache (:func:`store_cached`).
"""

from __future__ import annotations

import logging
import os
import pickle
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

UNREADABLE = (
    OSError, RuntimeError, LookupError, ValueError, EOFError, AttributeError, ImportError, pickle.UnpicklingError,
)  # fmt: skip
"""What reading a damaged or foreign cache file raises: :func:`torch.load`, :func:`torch.jit.load` or
:func:`joblib.load` on a truncated file (``IndexError``, ``EOFError``, ``RuntimeError``), a pickle whose
classes moved (``AttributeError``, ``ImportError``), or parsing contents that are not what was stored."""


def cache_root() -> Path:
    """``$AISEC_CACHE`` when set, else ``~/.cache/aisec`` (not created here)."""
    root = os.environ.get("AISEC_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "aisec"


@contextmanager
def atomic_path(path: Path, *, private: bool = False, durable: bool = False) -> Iterator[Path]:
    """Yield a new, empty temporary file beside ``path``; when the block ends without error, it becomes ``path``.

    Args:
        path: the destination; its folder is created when missing.
        private: the file is readable and writable by its owner only (``0o600``, whatever the umask), from
            its creation on, for secrets such as the gateway's key file; otherwise the umask decides, as
            for any new file.
        durable: flush the file to disk (``fsync``) before the rename, for files whose loss would lose
            data (the key file), not for caches that can be rebuilt.

    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600 if private else 0o666))
    try:
        if private:
            os.chmod(tmp, 0o600)  # the umask may have taken the owner's write bit: chmod ignores it
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, *, private: bool = False, durable: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`."""
    with atomic_path(path, private=private, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def load_cached(path: Path, parse: Callable[[Any], T], what: str) -> T | None:
    """``parse(torch.load(path, weights_only=True))``, or None when ``path`` is missing or unreadable.

    ``parse`` turns the loaded tensors into the cached object and raises one of :data:`UNREADABLE`
    (a missing key, a wrong shape) when they are not what the caller stored; such a file is logged
    as a warning naming ``what``, and the caller computes the entry again (and overwrites it).
    """
    if not path.is_file():
        return None
    import torch  # lazy: the gateway's key file and run summaries need no torch

    try:
        return parse(torch.load(path, map_location="cpu", weights_only=True))
    except UNREADABLE as exc:
        log.warning("ignoring unreadable %s cache %s: %s", what, path, exc)
        return None


def store_cached(path: Path, save: Callable[[Path], None], what: str) -> bool:
    """Write a cache entry with ``save(tmp)`` through :func:`atomic_path`; return whether it was stored.

    A cache that cannot be written (``OSError``: read-only, full, a file where a folder should be; or the
    ``RuntimeError`` :func:`torch.save` raises when its writer fails) is logged as a warning naming ``what``,
    and the caller goes on with the entry it computed: a cache saves time, it is never a reason to fail.
    """
    try:
        with atomic_path(path) as tmp:
            save(tmp)
    except (OSError, RuntimeError) as exc:
        log.warning("could not cache %s at %s (%s); going on without caching it", what, path, exc)
        return False
    return True
