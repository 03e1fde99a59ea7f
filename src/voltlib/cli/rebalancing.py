"""``voltlib rebalancing forecast|moves|tasks``: the rebalancing reports and field tasks, from the
database (the same functions as GET /api/v1/rebalancing/…)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from voltlib.cli.security import ConfigOpt, DbOpt, run, show
from voltlib.domain import rebalancing as rb
from voltlib.sharing import rebalancing as store_rb

rebalancing_app = typer.Typer(help="Rebalancing: shortage forecast, recommended moves, field tasks.",
                              no_args_is_help=True)

CityOpt = Annotated[str, typer.Option(help="City code.")]
HoursOpt = Annotated[int, typer.Option(min=1, max=rb.MAX_HOURS, help="Hours ahead.")]
PerDayOpt = Annotated[float | None, typer.Option("--rentals-per-day", min=0,
                                                 help="Demand; default: 4 a day per car of the city's fleet.")]
AtOpt = Annotated[datetime | None, typer.Option("--at", help="Forecast from this time (ISO 8601, UTC if no "
                                                             "offset); default: now.")]


def _at(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _state(conn: Connection, city: str) -> store_rb.CityState:
    state = store_rb.city_state(conn, city)
    if state is None:
        typer.echo(f"no city {city}", err=True)
        raise typer.Exit(code=1)
    return state


@rebalancing_app.command("forecast")
def forecast(city: CityOpt = "paris", hours: HoursOpt = 6, per_day: PerDayOpt = None, at: AtOpt = None,
             short: Annotated[bool, typer.Option("--short", help="Only stations with a shortage.")] = False,
             config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Expected cars, free bays and missed pickups/returns per station and hour, as JSON."""
    state = run(config, database_url, partial(_state, city=city))
    show(store_rb.forecast_report(state, now=_at(at), hours=hours, per_day=per_day, short_only=short))


@rebalancing_app.command("moves")
def moves(city: CityOpt = "paris", hours: HoursOpt = 6, per_day: PerDayOpt = None, at: AtOpt = None,
          max_moves: Annotated[int, typer.Option("--max", min=0, max=200, help="At most this many.")]
          = rb.DEFAULT_MAX_MOVES,
          config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Recommended moves, most urgent first (live tasks counted as done), as JSON."""

    def load(conn: Connection) -> tuple[store_rb.CityState, list[rb.FieldTask]]:
        return _state(conn, city), store_rb.live_tasks(conn, city)

    state, tasks = run(config, database_url, load)
    show(store_rb.moves_report(state, tasks, now=_at(at), hours=hours, per_day=per_day, max_moves=max_moves))


@rebalancing_app.command("tasks")
def tasks(city: Annotated[str | None, typer.Option(help="City code.")] = None,
          state: Annotated[str | None, typer.Option(help=" | ".join(s.value for s in rb.TaskState))] = None,
          config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Field tasks, newest first, with their history."""
    if state is not None and state not in {s.value for s in rb.TaskState}:
        raise typer.BadParameter(f"state is one of {', '.join(s.value for s in rb.TaskState)}")
    rows: list[dict[str, Any]] = run(config, database_url, partial(store_rb.list_tasks, city=city, state=state))
    show(rows)
