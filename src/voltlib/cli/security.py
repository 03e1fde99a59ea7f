"""``voltlib alert|incident|workorder|audit …``: security operations from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from voltlib.config import load_settings
from voltlib.security import audit
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

T = TypeVar("T")
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (or VOLTLIB_CONFIG).")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (or VOLTLIB_DATABASE_URL).")]
ActorOpt = Annotated[str, typer.Option("--as", help="Who does this (recorded in the audit log).")]

audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


def _now() -> datetime:
    return datetime.now(UTC)


def run(config: Path | None, database_url: str | None, op: Callable[..., T]) -> T:
    settings = load_settings(config, database_url=database_url)
    store = Store(settings.database_url)
    try:
        upgrade(store.engine)
        return store.run_sync(op)
    finally:
        store.close()


def show(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Recompute the chain; exit 1 and list every edited, reordered or deleted entry."""
    rows = run(config, database_url, audit.read_chain)
    breaks = audit.verify(rows)
    head = rows[-1]["hash"] if rows else audit.GENESIS
    if breaks:
        for b in breaks:
            typer.echo(f"entry {b.seq}: {b.problem}", err=True)
        typer.echo(f"audit chain BROKEN: {len(breaks)} problem(s) in {len(rows)} entries", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"audit chain OK: {len(rows)} entries, head {head}")


@audit_app.command("list")
def audit_list(limit: int = 50, action: str | None = None, config: ConfigOpt = None,
               database_url: DbOpt = None) -> None:
    show(run(config, database_url, partial(audit.list_entries, limit=limit, action=action)))
