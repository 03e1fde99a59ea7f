"""``voltlib tx …``, ``voltlib idtag delete|export|import`` and ``voltlib cp command|follow|commands``:
what an operator does through the running server's API (an operator's close must reach the server's
bus, commands reach the node holding the socket, and every change is audited under the token's
name). Lists follow the API's Link pages (docs/operations.md)."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voltlib.domain import idtag_csv

tx_app = typer.Typer(help="Transactions: list, show, close an abandoned one (through the running server).",
                     no_args_is_help=True)
UrlOpt = Annotated[str, typer.Option(envvar="VOLTLIB_URL", help="Base URL of the running server.")]
TokenOpt = Annotated[str, typer.Option(envvar="VOLTLIB_TOKEN", help="API token.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DEFAULT_URL = "http://127.0.0.1:8180"
IMPORT_BATCH = 1000  # rows per import request (the API takes at most idtag_csv.MAX_ROWS)


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _refused(response: httpx.Response) -> NoReturn:
    """Say what the API refused (a problem's title and detail, row errors as a table); exit 1."""
    err = Console(stderr=True)
    try:
        problem = response.json()
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:200]}
    err.print(f"[bold red]{response.status_code} {problem.get('title', '')}[/]: {problem.get('detail', '')}")
    if problem.get("errors"):
        _errors_table(problem["errors"], err)
    raise typer.Exit(code=1)


def _errors_table(errors: list[dict[str, Any]], console: Console) -> None:
    table = Table("row", "column", "problem", title="CSV errors")
    for e in errors:
        table.add_row(str(e["row"]), e["column"] or "", e["detail"])
    console.print(table)


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        _refused(response)
    return response


def _kwh(row: dict[str, Any]) -> str:
    if row.get("meter_stop") is None:
        return ""
    return f"{(row['meter_stop'] - row['meter_start']) / 1000:.2f}"


def _transactions_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "charge point", "conn.", "id tag", "started (UTC)", "stopped (UTC)", "kWh", "stop reason",
                  "closed by", title=f"{len(rows)} transaction(s)")
    table.columns[0].no_wrap = True
    for r in rows:
        table.add_row(str(r["id"]), r["charge_point_id"], str(r["connector_id"]), r["id_tag"], _when(r["started_at"]),
                      _when(r["stopped_at"]) or "[green]open[/]", _kwh(r), r["stop_reason"] or "",
                      r.get("closed_by") or "")
    return table


def _when(text: str | None) -> str:
    """An API time (UTC, ISO 8601) as a table shows it: 2026-12-07 08:15:00."""
    return "" if text is None else text.replace("T", " ").removesuffix("Z")[:19]


@tx_app.command("list")
def tx_list(
    cp: Annotated[str | None, typer.Option("--cp", help="Only this charge point.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only this id tag.")] = None,
    state: Annotated[bool | None, typer.Option("--open/--closed", help="Only open, or only closed, ones.")] = None,
    since: Annotated[datetime | None, typer.Option("--from", help="Started at or after (ISO 8601, UTC if no zone).")]
    = None,
    until: Annotated[datetime | None, typer.Option("--to", help="Started before.")] = None,
    stop_reason: Annotated[str | None, typer.Option(help="As the charge point sent it.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many rows at most (pages are followed).")] = 50,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Transactions, newest first."""
    params: dict[str, Any] = {"charge_point": cp, "id_tag": tag, "stop_reason": stop_reason,
                              "open": None if state is None else str(state).lower(),
                              "from": _iso(since), "to": _iso(until), "limit": min(limit, 1000)}
    with _client(url, token) as api:
        rows = _rows(api, "/api/v1/transactions", {k: v for k, v in params.items() if v is not None}, limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        Console().print(_transactions_table(rows))


def _iso(at: datetime | None) -> str | None:
    """A time for the API: one without a zone is UTC (as ``voltlib idtag set --expiry``)."""
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()


@tx_app.command("show")
def tx_show(transaction_id: int, as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """One transaction."""
    with _client(url, token) as api:
        row = _checked(api.get(f"/api/v1/transactions/{transaction_id}")).json()
    _show_one(row, as_json)


def _show_one(row: dict[str, Any], as_json: bool) -> None:
    show_fields(row, as_json, f"transaction {row['id']}", extra={"kWh": _kwh(row)})


def show_fields(row: dict[str, Any], as_json: bool, title: str, extra: dict[str, str] | None = None) -> None:
    """One API object as JSON, or as a field/value table (with ``extra`` rows worked out for people)."""
    if as_json:
        typer.echo(json.dumps(row, indent=2))
        return
    table = Table("field", "value", title=title)
    for key, value in row.items():
        table.add_row(key, "" if value is None else str(value))
    for key, text in (extra or {}).items():
        table.add_row(key, text)
    Console().print(table)


@tx_app.command("close")
def tx_close(
    transaction_id: int,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    meter_stop: Annotated[int | None, typer.Option(help="Register (Wh) to bill up to; default: its latest reading.")]
    = None,
    stopped_at: Annotated[datetime | None, typer.Option(help="When it ended; default: that reading's time.")] = None,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Close an abandoned open transaction (admin or operator token); audited, nothing deleted."""
    body: dict[str, Any] = {"reason": reason}
    if meter_stop is not None:
        body["meter_stop"] = meter_stop
    if stopped_at is not None:
        body["stopped_at"] = _iso(stopped_at)
    with _client(url, token) as api:
        row = _checked(api.post(f"/api/v1/transactions/{transaction_id}/close", json=body)).json()
    _show_one(row, as_json)


# --- id tags (registered on ``voltlib idtag`` by cli/main.py) ---------------------------------


def tag_delete(id_tag: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "") -> None:
    """Delete an id tag: unknown to authorisation from now on; its transactions stay."""
    with _client(url, token) as api:
        _checked(api.delete(f"/api/v1/id-tags/{id_tag}"))
    typer.echo(f"{id_tag}: deleted")


def tag_export(
    file: Annotated[Path | None, typer.Argument(help="Where to write the CSV (default: standard output).")] = None,
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Every id tag as CSV (id_tag, status, expiry_date, parent_id_tag, note)."""
    with _client(url, token) as api:
        text = _checked(api.get("/api/v1/id-tags/export")).text
    if file is None:
        sys.stdout.write(text)
    else:
        file.write_text(text, encoding="utf-8", newline="")
        typer.echo(f"{max(text.count(chr(10)) - 1, 0)} id tag(s) written to {file}", err=True)


def tag_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV (docs/operations.md).")],
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Create or change id tags from a CSV: the whole file is checked first (errors by row number,
    nothing sent), then sent in parts; importing the same file again changes nothing."""
    parsed = idtag_csv.parse(file.read_text(encoding="utf-8"))
    if parsed.errors:
        err = Console(stderr=True)
        _errors_table([e.as_dict() for e in parsed.errors], err)
        err.print(f"[bold red]{parsed.error_count} error(s)[/]: nothing was imported")
        raise typer.Exit(code=1)
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    columns = (TextColumn("[bold]importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _client(url, token) as api, Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("import", total=len(parsed.rows))
        for first in range(0, len(parsed.rows), IMPORT_BATCH):
            part = parsed.rows[first:first + IMPORT_BATCH]
            text = idtag_csv.render({"id_tag": r.id_tag, "status": r.status, "expiry_date": r.expiry_date,
                                     "parent_id_tag": r.parent_id_tag, "note": r.note} for r in part)
            response = api.post("/api/v1/id-tags/import", content=text.encode(), headers={"Content-Type": "text/csv"})
            if response.status_code >= 400:
                progress.stop()
                typer.echo(f"rows {first + 2}-{first + 1 + len(part)} of the file were refused; the rows before "
                           "them are imported (importing the file again is safe)", err=True)
                _refused(response)
            for key in totals:
                totals[key] += response.json()[key]
            progress.advance(task, len(part))
    table = Table("rows", "created", "updated", "unchanged", title=str(file))
    table.add_row(str(len(parsed.rows)), *(str(v) for v in totals.values()))
    Console().print(table)


# --- commands (registered on ``voltlib cp`` by cli/main.py) -----------------------------------

FOLLOW_POLL = (0.2, 1.0)  # seconds between reads of a queued command: first, then at most
MAX_FOLLOW = 360.0  # seconds ``follow`` waits at most: the API's longest command timeout (300 s) and some


def cp_command(
    cp_id: str,
    action: Annotated[str, typer.Argument(help="OCPP action, e.g. Reset, RemoteStartTransaction.")],
    payload: Annotated[str, typer.Option(help="The OCPP request payload as JSON.")] = "{}",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the answer, or return once the command "
                                       "is stored (queued) with its id.")] = True,
    follow: Annotated[bool, typer.Option(help="With --no-wait: then follow it to its end with a spinner.")] = False,
    timeout: Annotated[float, typer.Option(min=0.1, max=300, help="Seconds the server waits for the charge point.")]
    = 30.0,
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Send a command to a charge point through the running server; print the command (JSON)."""
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"payload is not JSON: {exc}") from None
    params: dict[str, Any] = {"timeout": timeout, **({} if wait else {"wait": "false"})}
    with _client(url, token) as api:
        response = api.post(f"/api/v1/charge-points/{cp_id}/commands/{action}", json=body, params=params,
                            timeout=timeout + 10)
        if response.status_code >= 400:
            typer.echo(json.dumps(response.json(), indent=2))
            raise typer.Exit(code=1)
        row = response.json()
        if not wait and follow:
            row = _followed(api, response.headers["Location"], row)
        elif not wait:
            typer.echo(f"command {row['id']} {row['state']}: voltlib cp follow {cp_id} {row['id']}", err=True)
    typer.echo(json.dumps(row, indent=2))
    if follow and row["state"] != "answered":
        raise typer.Exit(code=1)


def cp_follow(
    cp_id: str, command_id: int, as_json: JsonOpt = False,
    max_wait: Annotated[float, typer.Option(min=0, help="Seconds to follow a queued command at most.")] = MAX_FOLLOW,
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """Follow a command (sent with --no-wait) until it ends: exit 0 when the charge point answered,
    1 when it ended otherwise (offline, timeout, lost, failed, refused) or is still queued."""
    with _client(url, token) as api:
        location = f"/api/v1/charge-points/{cp_id}/commands/{command_id}"
        row = _followed(api, location, _checked(api.get(location)).json(), max_wait)
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        Console().print(_commands_table([row], title=f"command {row['id']}"))
    if row["state"] != "answered":
        raise typer.Exit(code=1)


def _followed(api: httpx.Client, location: str, row: dict[str, Any], max_wait: float = MAX_FOLLOW) -> dict[str, Any]:
    """The command at ``location`` once it has left ``queued`` (or ``max_wait`` seconds on)."""
    started = time.monotonic()
    pause = FOLLOW_POLL[0]
    with Console(stderr=True).status(f"{row['action']} {row['id']}: queued") as spinner:
        while row["state"] == "queued" and time.monotonic() - started < max_wait:
            time.sleep(pause)
            pause = min(pause * 1.5, FOLLOW_POLL[1])
            row = _checked(api.get(location)).json()
            spinner.update(f"{row['action']} {row['id']}: {row['state']} ({time.monotonic() - started:.0f} s)")
    return row


def cp_commands(
    cp_id: str,
    limit: Annotated[int, typer.Option(min=1, help="How many rows at most (pages are followed).")] = 20,
    as_json: JsonOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = "",
) -> None:
    """A charge point's commands, newest first, and what became of each."""
    with _client(url, token) as api:
        rows = _rows(api, f"/api/v1/charge-points/{cp_id}/commands", {"limit": min(limit, 1000)}, limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        Console().print(_commands_table(rows, title=f"{len(rows)} command(s) of {cp_id}"))


def _rows(api: httpx.Client, path: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of a paged list, following its Link rel=next."""
    rows: list[dict[str, Any]] = []
    response = _checked(api.get(path, params=params))
    while True:
        rows += response.json()
        following = response.links.get("next", {}).get("url")
        if following is None or len(rows) >= limit:
            return rows[:limit]
        response = _checked(api.get(following))


def _commands_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table("id", "action", "state", "answer", "requested by", "created (UTC)", "finished (UTC)", title=title)
    for r in rows:
        answer = (r.get("response") or {}).get("status") or r.get("error_code") or r.get("error_description") or ""
        table.add_row(str(r["id"]), r["action"], r["state"], str(answer), r.get("requested_by") or "",
                      _when(r["created_at"]), _when(r.get("finished_at")))
    return table
