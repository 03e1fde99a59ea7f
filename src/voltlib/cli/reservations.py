"""``voltlib reservation list|show|make|cancel``: an operator's reservations through the running
server's API (voltlib chooses the id and sends ReserveNow / CancelReservation in the charge point's
OCPP version). Car sharing's holds are listed too, marked by their origin (docs/operations.md)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from voltlib.cli.operator import DEFAULT_URL, JsonOpt, TokenOpt, UrlOpt, _checked, _client, _iso, _when, show_fields

reservation_app = typer.Typer(help="Reservations: list, show, make, cancel (through the running server).",
                              no_args_is_help=True)
STATUS_COLOUR = {"Accepted": "green", "Requested": "yellow", "Used": "cyan", "Cancelled": "dim", "Expired": "dim"}


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "charge point", "conn.", "id tag", "status", "expires (UTC)", "origin", "rental / tx",
                  "created (UTC)", title=f"{len(rows)} reservation(s)")
    table.columns[0].no_wrap = True
    for r in rows:
        colour = STATUS_COLOUR.get(r["status"], "red")
        link = r.get("rental_id") or (f"tx {r['transaction_id']}" if r.get("transaction_id") else "")
        table.add_row(str(r["id"]), r["charge_point_id"], str(r["connector_id"]), r["id_tag"],
                      f"[{colour}]{r['status']}[/]", _when(r["expires_at"]), r["origin"], link, _when(r["created_at"]))
    return table


def _show(row: dict[str, Any], as_json: bool) -> None:
    show_fields(row, as_json, f"reservation {row['id']}")


@reservation_app.command("list")
def reservation_list(
    cp: Annotated[str | None, typer.Option("--cp", help="Only this charge point.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only this id tag.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status (as of now): Accepted, Used, Expired...")]
    = None,
    origin: Annotated[str | None, typer.Option(help="api or car-sharing.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many rows at most (pages are followed).")] = 50,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Reservations, newest first."""
    params = {"charge_point": cp, "id_tag": tag, "status": status, "origin": origin, "limit": min(limit, 1000)}
    rows: list[dict[str, Any]] = []
    with _client(url, token) as api:
        response = _checked(api.get("/api/v1/reservations", params={k: v for k, v in params.items() if v is not None}))
        while True:
            rows += response.json()
            following = response.links.get("next", {}).get("url")
            if following is None or len(rows) >= limit:
                break
            response = _checked(api.get(following))
    rows = rows[:limit]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        Console().print(_table(rows))


@reservation_app.command("show")
def reservation_show(reservation_id: int, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL,
                     token: TokenOpt = "") -> None:
    """One reservation."""
    with _client(url, token) as api:
        _show(_checked(api.get(f"/api/v1/reservations/{reservation_id}")).json(), as_json)


@reservation_app.command("make")
def reservation_make(
    cp_id: str, id_tag: str,
    connector: Annotated[int, typer.Option(min=0, help="The connector (2.0.1: the EVSE); 0: any.")] = 0,
    minutes: Annotated[int | None, typer.Option(min=1, max=1440, help="How long (default 30).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Until when instead (ISO 8601, UTC if no zone).")] = None,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Reserve a connector for an id tag (admin or operator token); shows what the charge point answered."""
    body: dict[str, Any] = {"id_tag": id_tag, "connector_id": connector}
    if minutes is not None:
        body["minutes"] = minutes
    if until is not None:
        body["expires_at"] = _iso(until)
    with _client(url, token) as api:
        row = _checked(api.post(f"/api/v1/charge-points/{cp_id}/reservations", json=body)).json()
    _show(row, as_json)
    if row["status"] not in ("Accepted", "Requested"):
        raise typer.Exit(code=2)  # the charge point refused it, or it could not be sent


@reservation_app.command("cancel")
def reservation_cancel(reservation_id: int, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL,
                       token: TokenOpt = "") -> None:
    """Cancel an open reservation made through the API (CancelReservation)."""
    with _client(url, token) as api:
        _show(_checked(api.delete(f"/api/v1/reservations/{reservation_id}")).json(), as_json)
