"""``voltlib alert|incident|workorder|audit …``: security operations from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Connection

from voltlib.config import load_settings
from voltlib.security import audit, records, workorders
from voltlib.security.incidents import LifecycleError
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


# --- alerts and incidents ----------------------------------------------------------------------

alert_app = typer.Typer(help="Security alerts.", no_args_is_help=True)
incident_app = typer.Typer(help="Security incidents: list, show, acknowledge, resolve.", no_args_is_help=True)
workorder_app = typer.Typer(help="Work orders for field interventions.", no_args_is_help=True)


@alert_app.command("list")
def alert_list(cp: Annotated[str | None, typer.Option("--cp", help="Only this charge point.")] = None,
               expected: Annotated[bool | None, typer.Option("--expected/--unexpected")] = None,
               limit: int = 100, config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    show(run(config, database_url, partial(records.list_alerts, cp_id=cp, expected=expected, limit=limit)))


@incident_app.command("list")
def incident_list(state: Annotated[str | None, typer.Option(help="open | acknowledged | resolved")] = None,
                  config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    show(run(config, database_url, partial(records.list_incidents, state=state)))


@incident_app.command("show")
def incident_show(incident_id: int, config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    found = run(config, database_url, partial(records.get_incident, incident_id=incident_id))
    if found is None:
        typer.echo(f"no incident {incident_id}", err=True)
        raise typer.Exit(code=1)
    show(found)


def _change(incident_id: int, action: str, note: str | None, actor: str, config: Path | None,
            database_url: str | None) -> None:
    def op(conn: Connection) -> dict[str, Any] | None:
        row = records.change_incident(conn, incident_id, action=action, by=actor, note=note, now=_now())
        if row is not None:
            audit.append(conn, actor=actor, action=f"incident.{action}", target=str(incident_id),
                         detail={"note": note, "via": "cli"}, now=_now())
        return row

    try:
        row = run(config, database_url, op)
    except LifecycleError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    if row is None:
        typer.echo(f"no incident {incident_id}", err=True)
        raise typer.Exit(code=1)
    show(row)


@incident_app.command("ack")
def incident_ack(incident_id: int, note: str | None = None, actor: ActorOpt = "cli",
                 config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Acknowledge: someone is on it."""
    _change(incident_id, "acknowledge", note, actor, config, database_url)


@incident_app.command("resolve")
def incident_resolve(incident_id: int, note: Annotated[str, typer.Option(help="How it was resolved (required).")],
                     actor: ActorOpt = "cli", config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    _change(incident_id, "resolve", note, actor, config, database_url)


# --- work orders -------------------------------------------------------------------------------

@workorder_app.command("add")
def workorder_add(
    technician: Annotated[str, typer.Option(help="The technician's API token name.")],
    badge: Annotated[str, typer.Option(help="The idTag of the technician's badge.")],
    cp: Annotated[list[str], typer.Option("--cp", help="Charge point (repeat for several).")],
    start: Annotated[datetime, typer.Option(help="Window start (ISO 8601, UTC if no offset).")],
    end: Annotated[datetime, typer.Option(help="Window end.")],
    purpose: Annotated[str, typer.Option(help="What the intervention is for.")],
    actor: ActorOpt = "cli", config: ConfigOpt = None, database_url: DbOpt = None,
) -> None:
    starts_at, ends_at = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end))
    try:
        workorders.check(cp, starts_at, ends_at, purpose, badge)
    except workorders.InvalidWorkOrder as exc:
        raise typer.BadParameter(str(exc)) from None

    def op(conn: Connection) -> dict[str, Any] | None:
        order_id = records.add_work_order(conn, technician=technician, badge=badge, charge_points=cp,
                                          starts_at=starts_at, ends_at=ends_at, purpose=purpose, created_by=actor,
                                          now=_now())
        audit.append(conn, actor=actor, action="work_order.create", target=str(order_id),
                     detail={"technician": technician, "charge_points": cp, "starts_at": starts_at,
                             "ends_at": ends_at, "purpose": purpose, "via": "cli"}, now=_now())
        return records.get_work_order(conn, order_id)

    show(run(config, database_url, op))


@workorder_app.command("list")
def workorder_list(technician: str | None = None, config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    show(run(config, database_url, partial(records.list_work_orders, technician=technician)))


@workorder_app.command("cancel")
def workorder_cancel(order_id: int, actor: ActorOpt = "cli", config: ConfigOpt = None,
                     database_url: DbOpt = None) -> None:
    def op(conn: Connection) -> bool:
        done = records.cancel_work_order(conn, order_id, _now())
        if done:
            audit.append(conn, actor=actor, action="work_order.cancel", target=str(order_id), detail={"via": "cli"},
                         now=_now())
        return done

    if not run(config, database_url, op):
        typer.echo(f"no open work order {order_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"cancelled work order {order_id}")


# --- scenario ----------------------------------------------------------------------------------

security_app = typer.Typer(help="Security measurement.", no_args_is_help=True)


@security_app.command("scenario")
def security_scenario(
    normal_seconds: Annotated[float, typer.Option(
        help="Simulated seconds of normal traffic before the attacks.", min=0)] = 1800.0,
    speed: Annotated[float, typer.Option(
        help="Simulated seconds per wall second (voltlib's clock, the charge points' and the runner's).",
        min=1.0, max=1000.0)] = 60.0,
    markdown: Annotated[Path | None, typer.Option(help="Also write the report to this Markdown file.")] = None,
    ocpp: Annotated[str, typer.Option(help="The OCPP version the attacking posts speak: 1.6 or 2.0.1.")] = "1.6",
) -> None:
    """Normal simulated traffic, then every attack of issue 5; exit 1 unless all are alerted within
    60 s and the normal traffic raised no alert."""
    import asyncio

    from voltlib.security import scenario

    if ocpp not in scenario.VERSIONS:
        typer.echo(f"--ocpp must be one of {', '.join(scenario.VERSIONS)}", err=True)
        raise typer.Exit(code=2)
    report = asyncio.run(scenario.run(normal_seconds=normal_seconds, speed=speed, ocpp=ocpp))
    text = report.markdown()
    typer.echo(text)
    if markdown is not None:
        markdown.write_text(text + "\n")
    if not report.meets_target():
        raise typer.Exit(code=1)
