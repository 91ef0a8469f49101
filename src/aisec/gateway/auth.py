"""Who is calling, and may they: API keys and roles.

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. A missing, malformed,
unknown or revoked key is 401 and a valid key of the wrong role is 403; the answers carry no
detail that tells which case it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aisec.gateway.keys import KeyRecord, KeyStore

#: Roles allowed on each kind of endpoint.
PREDICT_ROLES = frozenset({"predict"})
AUDIT_ROLES = frozenset({"auditor", "admin"})
ADMIN_ROLES = frozenset({"admin"})
ANY_ROLE = frozenset({"predict", "auditor", "admin"})


@dataclass
class Denied(Exception):
    """An authentication (401) or authorization (403) failure."""

    status: int
    key_id: str | None = None

    @property
    def message(self) -> str:
        return "missing or invalid API key" if self.status == 401 else "this key's role may not use this endpoint"


def token_from(headers: Mapping[str, str]) -> str | None:
    """The API key in the request headers, if any."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def authorize(keys: KeyStore, headers: Mapping[str, str], roles: Iterable[str]) -> KeyRecord:
    """The caller's key record; raises :class:`Denied` with 401 or 403."""
    record = keys.verify(token_from(headers))
    if record is None:
        raise Denied(401)
    if record.role not in frozenset(roles):
        raise Denied(403, record.id)
    return record


__all__ = ["ADMIN_ROLES", "ANY_ROLE", "AUDIT_ROLES", "PREDICT_ROLES", "Denied", "authorize", "token_from"]
