"""``voltlib profile …``: charging profiles through the running server's API (issue 20 part 3):
store one, install it on many charge points (with progress and a table of answers), see what a
charge point holds, clear, refresh. docs/operations.md, "Charging profiles"."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voltlib.cli.operator import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, _checked, _client, _iso, _when

profile_app = typer.Typer(help="Charging profiles: store, install on charge points, list, clear (through the "
                          "running server).", no_args_is_help=True)
PATH = "/api/v1/charging-profiles"


def _cp_path(cp_id: str) -> str:
    return f"/api/v1/charge-points/{cp_id}/charging-profiles"


def _periods(text: list[str]) -> list[dict[str, Any]]:
    """``0:7400`` -> {start_s 0, limit_w 7400}."""
    out = []
    for item in text:
        start, _, limit = item.partition(":")
        try:
            out.append({"start_s": int(start), "limit_w": float(limit)})
        except ValueError:
            raise typer.BadParameter(f"{item!r}: a period is START_S:LIMIT_W, e.g. 0:7400") from None
    return out


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _schedule(periods: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['start_s']}s:{p['limit_w']:g}W" for p in periods)


def _stored_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "OCPP id", "name", "purpose", "stack", "kind", "schedule", title=f"{len(rows)} profile(s)")
    for r in rows:
        kind = r["kind"] + (f" ({r['recurrency']})" if r.get("recurrency") else "")
        table.add_row(str(r["id"]), str(r["charging_profile_id"]), r["name"], r["purpose"], str(r["stack_level"]),
                      kind, _schedule(r["periods"]))
    return table


@profile_app.command("create")
def create(
    name: str,
    purpose: Annotated[str, typer.Option(help="ChargePointMax | TxDefault | Tx")],
    period: Annotated[list[str], typer.Option("--period", help="START_S:LIMIT_W, repeat (the first at 0).")],
    stack_level: Annotated[int, typer.Option(help="0-100; smart charging uses 0 and 1.")] = 2,
    kind: Annotated[str, typer.Option(help="Absolute | Recurring | Relative")] = "Absolute",
    recurrency: Annotated[str | None, typer.Option(help="Daily | Weekly (Recurring)")] = None,
    start: Annotated[datetime | None, typer.Option(help="Schedule start (ISO 8601, UTC if no zone).")] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds the schedule lasts.")] = None,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Store a charging profile (limits in W); install it by id later."""
    body: dict[str, Any] = {"name": name, "purpose": purpose, "periods": _periods(period), "stack_level": stack_level,
                            "kind": kind, "recurrency": recurrency, "start_at": _iso(start), "duration_s": duration}
    with _client(url, token) as api:
        row = _checked(api.post(PATH, json={k: v for k, v in body.items() if v is not None})).json()
    _echo(row) if as_json else Console().print(_stored_table([row]))


@profile_app.command("list")
def list_stored(as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """The stored profiles (every page)."""
    rows: list[dict[str, Any]] = []
    with _client(url, token) as api:
        following: str | None = f"{PATH}?limit=1000"
        while following is not None:
            response = _checked(api.get(following))
            rows += response.json()
            following = response.links.get("next", {}).get("url")
    _echo(rows) if as_json else Console().print(_stored_table(rows))


@profile_app.command("show")
def show(profile_id: int, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """One stored profile and the charge points that hold it."""
    with _client(url, token) as api:
        row = _checked(api.get(f"{PATH}/{profile_id}")).json()
    if as_json:
        _echo(row)
        return
    Console().print(_stored_table([row]))
    typer.echo(f"held by: {', '.join(row['installed_on']) or 'no charge point'}")


@profile_app.command("delete")
def delete(profile_id: int, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """Delete a stored profile (refused while a charge point holds it)."""
    with _client(url, token) as api:
        _checked(api.delete(f"{PATH}/{profile_id}"))
    typer.echo(f"profile {profile_id}: deleted")


@profile_app.command("install")
def install(
    profile_id: int,
    charge_points: Annotated[list[str], typer.Argument(help="One or more charge point ids.")],
    connector: Annotated[int, typer.Option(help="0: the whole charge point.")] = 0,
    transaction: Annotated[int | None, typer.Option(help="A Tx profile's open transaction.")] = None,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Install a stored profile on charge points (SetChargingProfile each in its own OCPP version);
    exits 1 unless every one accepted it."""
    body: dict[str, Any] = {"profile_id": profile_id, "connector_id": connector}
    if transaction is not None:
        body["transaction_id"] = transaction
    results: list[dict[str, Any]] = []
    columns = (TextColumn("[bold]installing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _client(url, token) as api, Progress(*columns, console=Console(stderr=True), disable=as_json) as progress:
        task = progress.add_task("install", total=len(charge_points))
        for cp_id in charge_points:
            response = api.post(_cp_path(cp_id), json=body)
            answer = response.json()
            results.append({"charge_point_id": cp_id, "http": response.status_code,
                            "state": answer.get("command", {}).get("state", answer.get("title")),
                            "status": answer.get("status") or answer.get("detail", "")})
            progress.advance(task)
    if as_json:
        _echo(results)
    else:
        table = Table("charge point", "HTTP", "state", "answer", title=f"profile {profile_id}")
        for r in results:
            table.add_row(r["charge_point_id"], str(r["http"]), str(r["state"]), str(r["status"]))
        Console().print(table)
    if any(r["status"] != "Accepted" for r in results):
        raise typer.Exit(code=1)


@profile_app.command("held")
def held(cp_id: str, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """What a charge point holds: profiles, composite schedules, external limits."""
    with _client(url, token) as api:
        data = _checked(api.get(_cp_path(cp_id))).json()
    if as_json:
        _echo(data)
        return
    console = Console()
    table = Table("OCPP id", "conn.", "purpose", "stack", "source", "stored", "schedule", title=f"{cp_id}: profiles")
    for r in data["profiles"]:
        source = r["source"] + (" (read-only)" if r["read_only"] else "")
        table.add_row(str(r["charging_profile_id"]), str(r["connector_id"]), r["purpose"], str(r["stack_level"]),
                      source, str(r["stored_profile_id"] or ""), _schedule(r["profile"]["periods"]))
    console.print(table)
    composite = Table("conn.", "read at", "schedule", title="composite schedules")
    for r in data["composite_schedules"]:
        composite.add_row(str(r["connector_id"]), _when(r["read_at"]), _schedule(r["periods"]))
    console.print(composite)
    limits = Table("EVSE", "source", "grid critical", "limit (W)", "since", title="external limits")
    for r in data["external_limits"]:
        limits.add_row(str(r["evse_id"]), r["limit_source"], str(r["grid_critical"]), str(r["limit_w"]),
                       _when(r["received_at"]))
    console.print(limits)


@profile_app.command("clear")
def clear(
    cp_id: str,
    profile: Annotated[int | None, typer.Option("--id", help="The OCPP id of the profile to clear.")] = None,
    connector: Annotated[int | None, typer.Option(help="Only on this connector.")] = None,
    purpose: Annotated[str | None, typer.Option(help="Only of this purpose.")] = None,
    stack_level: Annotated[int | None, typer.Option(help="Only at this stack level.")] = None,
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Clear profiles on a charge point (ClearChargingProfile); smart charging's are refused."""
    body = {"charging_profile_id": profile, "connector_id": connector, "purpose": purpose, "stack_level": stack_level}
    with _client(url, token) as api:
        answer = _checked(api.post(f"{_cp_path(cp_id)}/clear", json={k: v for k, v in body.items()
                                                                      if v is not None})).json()
    typer.echo(f"{cp_id}: {answer['command']['state']}, {answer['status']}")


@profile_app.command("refresh")
def refresh(cp_id: str, duration: Annotated[int, typer.Option(help="Seconds of composite schedule.")] = 3600,
            as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """Read back the composite schedules (and, on 2.0.1, every profile the station holds)."""
    with _client(url, token) as api:
        answer = _checked(api.post(f"{_cp_path(cp_id)}/refresh", json={"duration_s": duration})).json()
    if as_json:
        _echo(answer)
        return
    table = Table("connector", "state", "answer", title=f"{cp_id}: GetCompositeSchedule")
    for r in answer["composites"]:
        table.add_row(str(r["command"]["request"].get("connectorId", r["command"]["request"].get("evseId"))),
                      r["command"]["state"], str(r["status"]))
    Console().print(table)
    if answer["report"] is not None:
        typer.echo(f"GetChargingProfiles request {answer['report']['request_id']}: {answer['report']['status']}")
