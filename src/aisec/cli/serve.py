"""CLI of the gateway: ``aisec serve``, ``aisec keys create/list/revoke``, ``aisec audit``.

Plain Typer-ready functions (the main CLI registers them); nothing heavy is imported until a
command runs. ``python -m aisec.cli.serve ...`` runs them on their own.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Gateway settings (YAML).")]


def _settings(config: Path, model: Path | None = None) -> Any:
    from aisec.gateway.settings import load_settings

    settings = load_settings(config)
    if model is not None:
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"path": str(model.resolve())})}
        )
    return settings


def serve(
    config: ConfigOpt,
    model: Annotated[Path | None, typer.Option(help="Model file; replaces model.path of the settings.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve a model behind the aisec gateway (KServe v2 and /predict)."""
    import uvicorn

    from aisec.gateway.app import create_app

    app = create_app(_settings(config, model))
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def keys_create(
    config: ConfigOpt,
    role: Annotated[str, typer.Option(help="predict, auditor or admin.")] = "predict",
    name: Annotated[str, typer.Option(help="A note on who holds the key.")] = "",
) -> None:
    """Create an API key; it is printed once and stored only as a salted hash."""
    from aisec.gateway.keys import KeyStore

    token, record = KeyStore(_settings(config).keys_file).create(role, name)
    typer.echo(f"id:   {record.id}\nrole: {record.role}\nkey:  {token}")
    typer.echo("Store the key now: it cannot be shown again.", err=True)


def keys_list(config: ConfigOpt) -> None:
    """List API keys (ids, roles, names, revocation; never secrets)."""
    from aisec.gateway.keys import KeyStore

    for r in KeyStore(_settings(config).keys_file).list():
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created))
        typer.echo(f"{r.id}  {r.role:<8} {'revoked' if r.revoked else 'active ':<8} {created}  {r.name}")


def keys_revoke(config: ConfigOpt, key_id: Annotated[str, typer.Argument(help="Id of the key.")]) -> None:
    """Revoke an API key; running gateways refuse it from their next request."""
    from aisec.gateway.keys import KeyStore

    record = KeyStore(_settings(config).keys_file).revoke(key_id)
    typer.echo(f"revoked {record.id} ({record.role})")


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def _since(value: str | None) -> float | None:
    if value is None:
        return None
    m = _SPAN.match(value.strip())
    if m:
        return time.time() - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    from aisec.errors import ConfigError

    raise ConfigError(f"--since: {value!r}; use a span such as 30m, 2h or 7d")


def audit(
    config: ConfigOpt,
    key_id: Annotated[str | None, typer.Option("--key", help="Only this key id.")] = None,
    since: Annotated[str | None, typer.Option(help="Only the last span, e.g. 30m, 2h, 7d.")] = None,
    status: Annotated[int | None, typer.Option(help="Only this HTTP status.")] = None,
    decision: Annotated[str | None, typer.Option(help="Only this decision (answered, rate-limited, ...).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    purge: Annotated[bool, typer.Option(help="Delete rows older than the retention first.")] = False,
) -> None:
    """Query the gateway's audit log."""
    from aisec.gateway.audit import open_audit

    settings = _settings(config)
    log = open_audit(settings.audit.path, retention_days=settings.audit.retention_days)
    try:
        if purge:
            typer.echo(f"purged {log.purge()} rows", err=True)
        rows = log.query(key_id=key_id, since=_since(since), status=status, decision=decision, limit=limit)
    finally:
        log.close()
    for row in rows:
        if as_json:
            typer.echo(json.dumps(row))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["ts"]))
        alerts = ",".join(row["alerts"] or [])
        typer.echo(
            f"{when}  {row['status']}  {row['decision']:<16} key={row['key_id'] or '-'}  "
            f"n={row['n_inputs']}  classes={row['output_class']}  policy={row['policy'] or '-'}  {alerts}"
        )


def standalone() -> typer.Typer:
    """These commands as their own Typer app (``python -m aisec.cli.serve``)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.command("serve")(serve)
    keys = typer.Typer(no_args_is_help=True)
    keys.command("create")(keys_create)
    keys.command("list")(keys_list)
    keys.command("revoke")(keys_revoke)
    app.add_typer(keys, name="keys")
    app.command("audit")(audit)
    return app


if __name__ == "__main__":
    standalone()()
