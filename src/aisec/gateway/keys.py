"""API keys: created once, shown once, stored only as salted hashes.

A key reads ``aisec_<id>_<secret>``: the id finds the record, the 32-byte random secret is
checked against ``HMAC-SHA256(salt, secret)`` with :func:`hmac.compare_digest`. The secret has
256 bits of entropy, so a fast keyed hash is enough (no password stretching is needed). The file
is rewritten atomically and re-read when it changes, so ``aisec keys revoke`` reaches a running
gateway within one request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from aisec.core.configurable import check_choice
from aisec.core.files import write_text_atomic
from aisec.errors import ConfigError
from aisec.gateway.settings import ROLES

PREFIX = "aisec_"


@dataclass(frozen=True)
class KeyRecord:
    """One stored key (never its secret)."""

    id: str
    role: str
    name: str
    salt: str
    hash: str
    created: float
    revoked: bool = False

    def public(self) -> dict[str, object]:
        """What may be shown: no salt, no hash."""
        return {"id": self.id, "role": self.role, "name": self.name, "created": self.created, "revoked": self.revoked}


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("utf-8"), hashlib.sha256).digest()


def split_key(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else ``None``."""
    if not token.startswith(PREFIX):
        return None
    rest = token[len(PREFIX) :]
    key_id, sep, secret = rest.partition("_")
    if not sep or not key_id or not secret or len(token) > 200:
        return None
    return key_id, secret


class KeyStore:
    """The keys file (JSON), thread-safe, re-read when its modification time changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int] | None = None
        self._dummy_salt = secrets.token_bytes(16)

    # -- file ------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            records = {r["id"]: KeyRecord(**r) for r in raw.get("keys", [])}
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{self.path}: not a valid keys file ({type(exc).__name__})") from None
        self._records, self._stamp = records, stamp

    def _save(self) -> None:
        body = json.dumps({"keys": [asdict(r) for r in self._records.values()]}, indent=1)
        write_text_atomic(self.path, body, private=True, durable=True)
        self._stamp = None

    # -- operations ------------------------------------------------------------------------
    def create(self, role: str, name: str = "") -> tuple[str, KeyRecord]:
        """A new key; returns ``(token, record)``. The token is not stored anywhere."""
        check_choice("role", role, ROLES)
        with self._lock:
            self._load()
            key_id = secrets.token_hex(6)
            while key_id in self._records:  # pragma: no cover - 48 random bits
                key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            salt = secrets.token_bytes(16)
            record = KeyRecord(
                id=key_id, role=role, name=name, salt=salt.hex(), hash=_digest(salt, secret).hex(), created=time.time()
            )
            self._records[key_id] = record
            self._save()
        return f"{PREFIX}{key_id}_{secret}", record

    def revoke(self, key_id: str) -> KeyRecord:
        with self._lock:
            self._load()
            record = self._records.get(key_id)
            if record is None:
                raise ConfigError(f"no key with id {key_id!r}")
            record = KeyRecord(**{**asdict(record), "revoked": True})
            self._records[key_id] = record
            self._save()
            return record

    def list(self) -> list[KeyRecord]:
        with self._lock:
            self._load()
            return sorted(self._records.values(), key=lambda r: r.created)

    def verify(self, token: str | None) -> KeyRecord | None:
        """The record of a valid, unrevoked key, else ``None``; the same work is done either way."""
        parts = split_key(token) if token else None
        key_id, secret = parts if parts else ("", token or "")
        with self._lock:
            self._load()
            record = self._records.get(key_id)
        salt = bytes.fromhex(record.salt) if record else self._dummy_salt
        expected = bytes.fromhex(record.hash) if record else b"\0" * 32
        ok = hmac.compare_digest(_digest(salt, secret), expected)
        if record is None or not ok or record.revoked:
            return None
        return record


__all__ = ["PREFIX", "KeyRecord", "KeyStore", "split_key"]
