"""The audit log: one row per decision, durable before the answer leaves.

SQLite in WAL mode. The row is committed before the response is sent, so a ``kill -9`` of the
gateway loses nothing that was acknowledged: with ``synchronous=normal`` (the default) the WAL is
written to the OS before the answer, which survives the death of the process; ``full`` also fsyncs
it, which survives an OS crash or power loss and costs a disk sync (milliseconds) per request;
``postgresql://...`` when psycopg is installed. Rows older than the retention are deleted at
start-up and then every few hundred writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aisec.core.configurable import check_choice
from aisec.errors import ConfigError, MissingDependencyError

COLUMNS = (
    "request_id",
    "ts",
    "key_id",
    "role",
    "endpoint",
    "status",
    "decision",
    "input_hash",
    "n_inputs",
    "output_class",
    "policy",
    "monitor_scores",
    "alerts",
    "latency_ms",
)


@dataclass
class AuditRow:
    """One decision of the gateway."""

    request_id: str
    endpoint: str
    status: int
    decision: str
    ts: float = field(default_factory=time.time)
    key_id: str | None = None
    role: str | None = None
    input_hash: str | None = None
    n_inputs: int = 0
    output_class: list[int] | None = None
    policy: str | None = None
    monitor_scores: dict[str, float] | None = None
    alerts: list[str] | None = None
    latency_ms: float | None = None

    def values(self) -> tuple[Any, ...]:
        d = asdict(self)
        for k in ("output_class", "monitor_scores", "alerts"):
            d[k] = json.dumps(d[k]) if d[k] is not None else None
        return tuple(d[c] for c in COLUMNS)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    request_id TEXT PRIMARY KEY, ts REAL NOT NULL, key_id TEXT, role TEXT, endpoint TEXT NOT NULL,
    status INTEGER NOT NULL, decision TEXT NOT NULL, input_hash TEXT, n_inputs INTEGER,
    output_class TEXT, policy TEXT, monitor_scores TEXT, alerts TEXT, latency_ms REAL
)"""


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for k in ("output_class", "monitor_scores", "alerts"):
        if row.get(k) is not None:
            row[k] = json.loads(row[k])
    return row


class SqliteAudit:
    """Audit rows in a SQLite file (WAL, fsync per commit); thread-safe."""

    def __init__(self, path: str | Path, *, retention_days: float | None = None, synchronous: str = "normal") -> None:
        check_choice("audit.synchronous", synchronous, ("normal", "full"))
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute(_SCHEMA)
        self._db.execute("CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts)")
        self._db.execute("CREATE INDEX IF NOT EXISTS audit_key ON audit (key_id, ts)")
        self._writes = 0
        self.purge()

    def write(self, row: AuditRow) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO audit ({', '.join(COLUMNS)}) VALUES ({marks})", row.values())
            self._writes += 1
            due = self._writes % 500 == 0
        if due:
            self.purge()

    def purge(self) -> int:
        """Delete rows older than the retention; the number deleted."""
        if self.retention_days is None:
            return 0
        cutoff = time.time() - self.retention_days * 86400.0
        with self._lock:
            return self._db.execute("DELETE FROM audit WHERE ts < ?", (cutoff,)).rowcount

    def query(
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        status: int | None = None,
        decision: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest rows first, filtered."""
        where, args = [], []
        for col, val in (("key_id", key_id), ("status", status), ("decision", decision)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        sql = f"SELECT {', '.join(COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC LIMIT ?"
        args.append(max(1, min(int(limit), 10_000)))
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_decode(dict(zip(COLUMNS, r, strict=True))) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresAudit(SqliteAudit):
    """Audit rows in PostgreSQL (needs ``psycopg``); each insert is committed before answering."""

    def __init__(self, url: str, *, retention_days: float | None = None) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependencyError("psycopg", "gateway") from exc
        self.path = Path(url)
        self.retention_days = retention_days
        self._lock = threading.Lock()
        self._db = _PgAdapter(psycopg.connect(url, autocommit=True))
        self._db.execute(_SCHEMA.replace("REAL", "DOUBLE PRECISION"))
        self._db.execute("CREATE INDEX IF NOT EXISTS audit_ts ON audit (ts)")
        self._writes = 0
        self.purge()


class _PgAdapter:
    """Makes a psycopg connection answer ``execute`` with ``?`` placeholders like sqlite3."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Any = ()) -> Any:
        sql = sql.replace("?", "%s").replace("INSERT OR REPLACE", "INSERT")
        return self._conn.execute(sql, args)

    def close(self) -> None:
        self._conn.close()


def open_audit(path: str, *, retention_days: float | None = None, synchronous: str = "normal") -> SqliteAudit:
    """A SQLite audit log for a path, or a PostgreSQL one for ``postgresql://``."""
    if path.startswith(("postgresql://", "postgres://")):
        return PostgresAudit(path, retention_days=retention_days)
    if "://" in path:
        raise ConfigError(f"audit.path: {path!r}; use a file path or postgresql://...")
    return SqliteAudit(path, retention_days=retention_days, synchronous=synchronous)


__all__ = ["COLUMNS", "AuditRow", "PostgresAudit", "SqliteAudit", "open_audit"]
