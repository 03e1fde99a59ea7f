"""The ``voltlib`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer

from voltlib.cli import operator as operator_cli
from voltlib.cli import profiles as profiles_cli
from voltlib.cli import reservations as reservations_cli
from voltlib.cli import security as security_cli
from voltlib.cli.members import member_app
from voltlib.cli.rebalancing import rebalancing_app
from voltlib.config import load_settings
from voltlib.domain.idtags import MAX_ID_TOKEN, valid_id_token
from voltlib.security.credentials import (
    PasswordPolicyError,
    check_policy,
    hash_api_token,
    hash_password,
    new_api_token,
    new_charge_point_password,
)
from voltlib.security.roles import ROLES
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.store.migrate import upgrade

app = typer.Typer(help="voltlib: electric car-sharing central system.", no_args_is_help=True)
cp_app = typer.Typer(help="Charge points.", no_args_is_help=True)
tag_app = typer.Typer(help="Id tags (RFID badges).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks.", no_args_is_help=True)
city_app = typer.Typer(help="Car-sharing cities and their stations.", no_args_is_help=True)
energy_app = typer.Typer(help="Fleet energy: what was charged where.", no_args_is_help=True)
app.add_typer(cp_app, name="cp")
app.add_typer(tag_app, name="idtag")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")
app.add_typer(city_app, name="city")
app.add_typer(energy_app, name="energy")
app.add_typer(security_cli.audit_app, name="audit")  # issue 5: security operations
app.add_typer(security_cli.alert_app, name="alert")
app.add_typer(security_cli.incident_app, name="incident")
app.add_typer(security_cli.workorder_app, name="workorder")
app.add_typer(security_cli.security_app, name="security")
app.add_typer(rebalancing_app, name="rebalancing")  # issue 4
app.add_typer(operator_cli.tx_app, name="tx")  # issue 20: through the running server's API
cp_app.command("command")(operator_cli.cp_command)
cp_app.command("follow")(operator_cli.cp_follow)
cp_app.command("commands")(operator_cli.cp_commands)
app.add_typer(member_app, name="member")  # issue 17: Plug & Charge contracts, through the API
app.add_typer(profiles_cli.profile_app, name="profile")
app.add_typer(reservations_cli.reservation_app, name="reservation")
tag_app.command("delete")(operator_cli.tag_delete)
tag_app.command("export")(operator_cli.tag_export)
tag_app.command("import")(operator_cli.tag_import)

T = TypeVar("T")
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file (or VOLTLIB_CONFIG).")]
DbOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (or VOLTLIB_DATABASE_URL).")]


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _store(config: Path | None, database_url: str | None) -> Iterator[Store]:
    settings = load_settings(config, database_url=database_url)
    store = Store(settings.database_url)
    try:
        upgrade(store.engine)
        yield store
    finally:
        store.close()


def _run(config: Path | None, database_url: str | None, op: Callable[..., T]) -> T:
    with _store(config, database_url) as store:
        return store.run_sync(op)


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# --- cities -----------------------------------------------------------------------------------


@city_app.command("import")
def city_import(
    city: Annotated[str, typer.Argument(help="paris | lyon | bordeaux (data/cities.toml)")] = "paris",
    snapshot: Annotated[Path | None, typer.Option(help="Autolib' station CSV; default: the packaged Paris "
                                                       "snapshot (for paris)")] = None,
    security_profile: Annotated[int, typer.Option(min=0, max=3, help="of the charge points created")] = 1,
    password: Annotated[str | None, typer.Option(envvar="VOLTLIB_CP_PASSWORD",
                                                 help="Basic-auth password of created charge points "
                                                      "(profiles 1-2)")] = None,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Load a city (plans, policy) and, from a station snapshot, its stations, bays, charge points and cars."""
    from voltlib.sharing.cities import builtin_cities, paris_snapshot
    from voltlib.sharing.importer import parse_snapshot
    from voltlib.sharing.store import import_snapshot, upsert_city

    cities = builtin_cities()
    if city not in cities:
        raise typer.BadParameter(f"known cities: {', '.join(sorted(cities))}")
    if security_profile in (1, 2) and password is None:
        raise typer.BadParameter("profiles 1 and 2 need --password (or VOLTLIB_CP_PASSWORD)")
    text = snapshot.read_text(encoding="utf-8") if snapshot else (paris_snapshot() if city == "paris" else None)
    parsed = parse_snapshot(text, car_prefix=city[:2].upper()) if text else None
    password_hash = hash_password(password) if password and security_profile in (1, 2) else None

    def op(conn: Any) -> dict[str, Any]:
        upsert_city(conn, cities[city])
        if parsed is None:
            return {"city": city, "stations": 0}
        report = import_snapshot(conn, city, parsed, security_profile=security_profile, password_hash=password_hash,
                                 soc_percent=80.0, now=_now())
        return {"city": city, **report.__dict__, "skipped": parsed.skipped}

    _print(_run(config, database_url, op))


@energy_app.command("report")
def energy_report(
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD in the city's time zone (default: today).")]
    = None,
    city: Annotated[str, typer.Option(help="City code.")] = "paris",
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """kWh delivered per station and per vehicle on one day, and driven and charged per rental returned
    that day, as JSON."""
    from datetime import date

    from voltlib.energy.accounting import daily_report

    try:
        when = date.fromisoformat(day) if day else _now().date()
    except ValueError:
        raise typer.Exit(code=_fail("--date is YYYY-MM-DD")) from None
    report = _run(config, database_url, partial(daily_report, city=city, day=when, now=_now()))
    if report is None:
        raise typer.Exit(code=_fail(f"no city {city}"))
    _print(report)


@city_app.command("list")
def city_list(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Cities in the database."""
    from voltlib.sharing.store import list_cities

    _print([{k: v for k, v in c.items() if k != "plans"} for c in _run(config, database_url, list_cities)])


# --- serve ------------------------------------------------------------------------------------


@app.command()
def serve(
    config: ConfigOpt = None,
    database_url: DbOpt = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port for ws:// and http://.")] = None,
    tls_port: Annotated[int | None, typer.Option(help="Port for wss:// and https:// (profiles 2, 3).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Server private key (PEM).")] = None,
    tls_client_ca: Annotated[Path | None, typer.Option(help="CA of charge-point certificates (profile 3).")] = None,
    tls_client_crl: Annotated[Path | None, typer.Option(
        help="That CA's certificate revocation list(s), PEM; re-read when the file changes.")] = None,
    registration_policy: Annotated[str | None, typer.Option(help="reject | pending, for unknown ids.")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING...")] = None,
    log_format: Annotated[str | None, typer.Option(help="text | json (one object per line).")] = None,
    time_scale: Annotated[float | None, typer.Option(
        help="Simulated time: voltlib's clock runs this many times faster than the wall clock (1 to 1000).")] = None,
    time_origin: Annotated[str | None, typer.Option(
        help="Simulated time: what voltlib's clock reads at start (ISO 8601; default: now).")] = None,
) -> None:
    """Run the central system: OCPP gateway and HTTP API."""
    from pydantic import ValidationError

    from voltlib.server import serve as serve_forever

    try:
        settings = load_settings(config, database_url=database_url, host=host, port=port, tls_port=tls_port,
                                 tls_cert=tls_cert, tls_key=tls_key, tls_client_ca=tls_client_ca,
                                 tls_client_crl=tls_client_crl,
                                 registration_policy=registration_policy, log_level=log_level,
                                 log_format=log_format, time_scale=time_scale, time_origin=time_origin)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.Exit(code=_fail(f"bad settings: {problems}")) from None
    from voltlib.telemetry import logs
    from voltlib.telemetry.metrics import node_name

    logs.configure(settings.log_level, settings.log_format, node=node_name(settings))
    if settings.time_scale != 1.0 or settings.time_origin is not None:
        logging.getLogger("voltlib").warning("simulated time: x%g from %s (GET /api/v1/clock)", settings.time_scale,
                                             settings.time_origin or "now")
    try:
        asyncio.run(serve_forever(settings))
    except KeyboardInterrupt:
        pass


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="small, paris, lyon, bordeaux, or a scenario TOML file.")] = "small",
    speed: Annotated[float | None, typer.Option(min=1, max=200, help="Simulated seconds per wall second.")] = None,
    hours: Annotated[float | None, typer.Option(min=0.05, max=48, help="Simulated hours (default: the scenario's).")]
    = None,
    seed: Annotated[int | None, typer.Option(help="Demand seed (default: the scenario's).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for report.json, report.html and the plots.")] = Path("sim-report"),
    station_limit_fraction: Annotated[float | None, typer.Option(
        min=0.01, max=1.0, help="Station grid limits as a share of their bays' ratings (1.0: unconstrained).")] = None,
    port: Annotated[int, typer.Option(help="Port of the in-process voltlib (0: any free one).")] = 0,
    ocpp201_share: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Share of the posts speaking OCPP 2.0.1, the others 1.6J (default: the scenario's).")]
    = None,
    compare: Annotated[bool, typer.Option(
        help="Run the scenario twice on its seed, first without its field crews, then with them; compare.")] = False,
    iso15118_share: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Share of the cars reporting their needs at a 2.0.1 post (default: the scenario's).")]
    = None,
    compare_planner: Annotated[bool, typer.Option(
        help="Run the scenario twice on its seed, first planned without the cars' needs (today's planner), "
             "then with them; compare energy delivered and cars with the range their trip needs.")] = False,
) -> None:
    """Run a city against an in-process voltlib on simulated time; write the report (JSON, HTML, plots)."""
    import dataclasses

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from voltlib.bench.compare import free_port
    from voltlib.sim import report as sim_report
    from voltlib.sim import scenario as sim_scenario
    from voltlib.sim.city import CitySimulation, Report

    try:
        chosen = sim_scenario.load(scenario)
    except sim_scenario.ScenarioError as exc:
        raise typer.Exit(code=_fail(str(exc))) from None
    if seed is not None:
        chosen = dataclasses.replace(chosen, seed=seed)
    if station_limit_fraction is not None:
        chosen = dataclasses.replace(chosen, station_limit_fraction=station_limit_fraction)
    if ocpp201_share is not None:
        chosen = dataclasses.replace(chosen, ocpp201_share=ocpp201_share)
    if iso15118_share is not None:
        chosen = dataclasses.replace(chosen, iso15118_share=iso15118_share)
    total = hours or chosen.hours
    if compare and not chosen.crew_shifts:
        raise typer.Exit(code=_fail(f"--compare: scenario {chosen.name} has no crew_shifts"))
    if compare and compare_planner:
        raise typer.Exit(code=_fail("--compare and --compare-planner: one comparison at a time"))
    if compare_planner and not (chosen.ocpp201_share and chosen.iso15118_share):
        raise typer.Exit(code=_fail("--compare-planner: no car reports its needs (ocpp201_share and "
                                    "iso15118_share must be above 0)"))

    def run(run_scenario: sim_scenario.Scenario, label: str) -> Report:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                      TimeElapsedColumn()) as progress:
            bar = progress.add_task(f"{run_scenario.name} ×{speed or run_scenario.speed:g}{label}", total=total,
                                    status="starting")

            def on_progress(hour: float, counts: Counter[str]) -> None:
                lost = sum(v for k, v in counts.items() if k.startswith("lost:"))
                progress.update(bar, completed=min(total, hour),
                                status=f"{counts['rentals_served']} rentals, {lost} lost")

            sim = CitySimulation(run_scenario, port=port or free_port(), on_progress=on_progress, speed=speed,
                                 hours=hours, on_phase=lambda phase: progress.update(bar, status=phase))
            found = asyncio.run(sim.run())
            progress.update(bar, completed=total, status="done")
        return found

    baseline = run(dataclasses.replace(chosen, crew_shifts=()), " without crews") if compare else None
    if compare_planner:
        baseline = run(dataclasses.replace(chosen, car_needs_planning=False), " today's planner")
    if baseline is not None:  # written at once: the second run takes as long again
        sim_report.write(baseline, out / (sim_report.BASELINE_PLANNER if compare_planner else
                                          sim_report.BASELINE_CREWS))
    label = " with crews" if compare else " with the cars' needs" if compare_planner else ""
    result = run(dataclasses.replace(chosen, car_needs_planning=True) if compare_planner else chosen, label)
    files = sim_report.write(result, out, baseline, planner=compare_planner)
    if baseline is not None and compare_planner:
        for name, r in (("today's planner", baseline), ("with the cars' needs", result)):
            typer.echo(f"{name}: {r.energy_delivered_kwh} kWh delivered; {r.pickups_with_range} of {r.pickups} "
                       f"cars picked up with the range their trip needs; reserved {r.reserved_with_range} of "
                       f"{r.reserved_pickups}; {r.rentals_served} served; answers {r.car_needs.get('answers')}")
    elif baseline is not None:
        typer.echo(f"without crews: {baseline.rentals_served} served of {baseline.demand} wanted "
                   f"({baseline.served_share:.1%}); lost {baseline.lost}; ×{baseline.speed_reached:g} real time")
    if result.crews is not None:
        typer.echo(f"crews: {result.crews['crews']} ({result.crews['per_thousand_cars']} per 1,000 cars), "
                   f"{result.crews['moves']} moves, {result.crews['crew_km']} crew-km")
    typer.echo(f"{result.rentals_served} rentals served of {result.demand} wanted ({result.served_share:.1%}); "
               f"lost {result.lost}; "
               f"{result.energy_delivered_kwh} kWh; peak station {result.peak_station_ratio:.0%} of its limit; "
               f"{result.alerts} alerts; {result.protocol_errors} protocol errors; "
               f"×{result.speed_reached:g} real time; posts per OCPP version {result.ocpp_versions}")
    if any(result.docks.get(k) for k in ("not_docked_there", "on_open_rental", "billed_negative", "billed_too_long")):
        typer.echo(f"cars plugged in that voltlib does not see docked or still rented, or odd bills: {result.docks}")
    for crash in result.crashes:
        typer.echo(f"crash at hour {crash['at_hour']}: down {crash['down_minutes']:g} simulated minutes; every "
                   f"charge point back {crash['wall_seconds_until_all_back']} wall seconds "
                   f"({crash['simulated_minutes_until_all_back']} simulated minutes) after the restart")
    if result.crash_audit is not None:
        problems = {k: v for k, v in result.crash_audit["problems"].items() if v}
        typer.echo(f"crash audit: acknowledged {result.crash_audit['acknowledged']}; "
                   + (f"PROBLEMS {problems}" if problems else "nothing lost, nothing twice"))
    typer.echo(f"report: {files['html']}")
    if result.crash_audit is not None and not result.crash_audit["ok"]:
        raise typer.Exit(1)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the demo's HTTP API and OCPP endpoint.")] = 8180,
    duration: Annotated[float | None, typer.Option(help="Play this many wall seconds of the morning, then stop "
                                                         "(default: the whole morning, then serve until Ctrl-C).")]
    = None,
) -> None:
    """A morning of Autolib' in central Paris at 120x: rentals, smart charging, intrusions; then explore it."""
    from voltlib.sim.demo import run as run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_demo(port=port, duration=duration)
    except OSError as exc:
        raise typer.Exit(code=_fail(f"cannot run the demo: {exc} (is port {port} free? try --port)")) from None


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Create or migrate the schema to the newest version."""
    with _store(config, database_url):
        typer.echo("database is at the newest schema")


# --- charge points ----------------------------------------------------------------------------


@cp_app.command("add")
def cp_add(
    cp_id: str,
    profile: Annotated[int, typer.Option(min=0, max=3, help="Security profile 0-3.")] = 1,
    password: Annotated[str | None, typer.Option(help="16-40 bytes; generated when omitted (profiles 1, 2).")] = None,
    fingerprint: Annotated[str | None, typer.Option(help="SHA-256 of its client certificate (profile 3).")] = None,
    pending: Annotated[bool, typer.Option(help="Register as Pending instead of Accepted.")] = False,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Register a charge point. A generated password is printed once and never stored in clear."""
    password_hash = None
    if profile in (1, 2):
        password = password or new_charge_point_password()
        try:
            check_policy(password)
        except PasswordPolicyError as exc:
            raise typer.BadParameter(str(exc)) from None
        password_hash = hash_password(password)
    _run(config, database_url, partial(repo.add_charge_point, cp_id=cp_id, registration="Pending" if pending
                                       else "Accepted", security_profile=profile, password_hash=password_hash,
                                       certificate_fingerprint=fingerprint, now=_now()))
    _print({"id": cp_id, "security_profile": profile, **({"password": password} if password_hash else {})})


@cp_app.command("list")
def cp_list(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    _print(_run(config, database_url, repo.list_charge_points))


@cp_app.command("show")
def cp_show(cp_id: str, config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    detail = _run(config, database_url, partial(repo.charge_point_detail, cp_id=cp_id))
    if detail is None:
        raise typer.Exit(code=_fail(f"no charge point {cp_id}"))
    _print(detail)


@cp_app.command("registration")
def cp_registration(cp_id: str, status: Annotated[str, typer.Argument(help="Accepted | Pending | Rejected")],
                    config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Approve or reject a charge point (takes effect at its next BootNotification or connection)."""
    if status not in ("Accepted", "Pending", "Rejected"):
        raise typer.BadParameter("Accepted, Pending or Rejected")
    if not _run(config, database_url, partial(repo.update_charge_point, cp_id=cp_id, registration=status)):
        raise typer.Exit(code=_fail(f"no charge point {cp_id}"))
    typer.echo(f"{cp_id}: {status}")


@cp_app.command("trace")
def cp_trace(
    cp_id: str,
    minutes: Annotated[int, typer.Option(min=0, max=1440, help="How long; 0 stops the trace.")] = 60,
    url: Annotated[str, typer.Option(envvar="VOLTLIB_URL", help="Base URL of the running server.")]
    = "http://127.0.0.1:8180",
    token: Annotated[str, typer.Option(envvar="VOLTLIB_TOKEN", help="API token (admin, operator or security).")]
    = "",
) -> None:
    """Log every frame of one charge point in full for a while, whatever message_log says."""
    response = httpx.post(f"{url}/api/v1/charge-points/{cp_id}/trace", json={"minutes": minutes},
                          headers={"Authorization": f"Bearer {token}"}, timeout=40)
    _print(response.json())
    if response.status_code >= 400:
        raise typer.Exit(code=1)


# --- id tags ----------------------------------------------------------------------------------


@tag_app.command("set")
def tag_set(
    id_tag: str,
    status: Annotated[str, typer.Option(help="Accepted | Blocked | Expired | Invalid")] = "Accepted",
    expiry: Annotated[datetime | None, typer.Option(help="Expiry (ISO 8601, UTC if no zone).")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent id tag (group).")] = None,
    config: ConfigOpt = None,
    database_url: DbOpt = None,
) -> None:
    """Create or change an id tag (1 to 36 characters: 2.0.1's IdToken; 1.6 stations send 20 at most)."""
    if not valid_id_token(id_tag):
        raise typer.BadParameter(f"an id token has 1 to {MAX_ID_TOKEN} printable characters, no outer spaces")
    if parent is not None and not valid_id_token(parent):
        raise typer.BadParameter(f"a parent id tag has 1 to {MAX_ID_TOKEN} printable characters, no outer spaces")
    if status not in ("Accepted", "Blocked", "Expired", "Invalid"):
        raise typer.BadParameter("Accepted, Blocked, Expired or Invalid")
    if expiry is not None and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    _run(config, database_url, partial(repo.upsert_id_tag, id_tag=id_tag, status=status, expiry_date=expiry,
                                       parent_id_tag=parent, now=_now()))
    typer.echo(f"{id_tag}: {status}")


@tag_app.command("list")
def tag_list(config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    _print(_run(config, database_url, repo.list_id_tags))


# --- tokens -----------------------------------------------------------------------------------


@token_app.command("create")
def token_create(name: str, role: Annotated[str, typer.Option(help=" | ".join(ROLES))] = "operator",
                 config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    """Create an API token; it is printed once and only its hash is stored."""
    if role not in ROLES:
        raise typer.BadParameter(", ".join(ROLES))
    token = new_api_token()
    _run(config, database_url, partial(repo.add_api_token, name=name, role=role, token_hash=hash_api_token(token),
                                       now=_now()))
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(name: str, config: ConfigOpt = None, database_url: DbOpt = None) -> None:
    if not _run(config, database_url, partial(repo.revoke_api_token, name=name, now=_now())):
        raise typer.Exit(code=_fail(f"no token {name}"))
    typer.echo(f"revoked {name}")


@bench_app.command("gateway")
def bench_gateway(
    charge_points: Annotated[int, typer.Option("-n", "--charge-points", min=1, help="Simulated charge points.")]
    = 100,
    duration: Annotated[float, typer.Option(help="Seconds of measured load per server.")] = 10.0,
    mode: Annotated[str, typer.Option(help="throughput (back-to-back MeterValues) or soak (60 s/30 s).")]
    = "throughput",
    servers: Annotated[str, typer.Option(help="Comma-separated: voltlib, baseline, ceiling.")]
    = "voltlib,baseline,ceiling",
    workers: Annotated[int, typer.Option(help="Load-generator processes.")] = 1,
    password: Annotated[str | None, typer.Option(help="Use profile 1 with this password.")] = None,
    database_url: DbOpt = None,
    nodes: Annotated[int, typer.Option(min=1, help="voltlib gateway nodes on one port over NATS (PostgreSQL).")]
    = 1,
    ocpp: Annotated[str, typer.Option(help="1.6 (MeterValues) or 2.0.1 (TransactionEvent Updated).")] = "1.6",
) -> None:
    """Same load against voltlib, the ocpp-package baseline and the aiohttp echo ceiling; prints ratios."""
    from voltlib.bench import gateway
    from voltlib.bench.compare import render_table
    from voltlib.bench.load import LoadPlan

    try:
        plan = LoadPlan(n_charge_points=charge_points, mode=mode, duration_s=duration,  # type: ignore[arg-type]
                        workers=workers, password=password, ocpp=ocpp)  # type: ignore[arg-type]
        runs = gateway.run(plan, [s.strip() for s in servers.split(",") if s.strip()], database_url, nodes)
    except ValueError as exc:
        raise typer.Exit(code=_fail(str(exc))) from None
    typer.echo(render_table(runs))


@bench_app.command("rolling-restart")
def bench_rolling_restart(
    charge_points: Annotated[int, typer.Option("-n", "--charge-points", min=1, help="Simulated charge points.")]
    = 2000,
    meter_s: Annotated[float, typer.Option(help="Seconds between two MeterValues of a charge point.")] = 10.0,
    settle_s: Annotated[float, typer.Option(help="Seconds of steady load before the first restart and after "
                                                 "the last.")] = 20.0,
    database_url: DbOpt = None,
    haproxy: Annotated[str, typer.Option(help="The HAProxy binary.")] = "haproxy",
    balancers: Annotated[int, typer.Option(min=1, help="HAProxy instances in front of both nodes, the charge "
                                                       "points split between them (DNS round-robin).")] = 1,
    back_timeout_s: Annotated[float, typer.Option(help="Seconds to wait, after a node's SIGTERM, for every charge "
                                                       "point to be connected again.")] = 300.0,
    ramp_timeout_s: Annotated[float, typer.Option(help="Seconds to wait for every charge point to connect and "
                                                       "start its transaction.")] = 600.0,
    tx_every: Annotated[int, typer.Option(min=1, help="Meter intervals between a charge point's StopTransaction "
                                                      "+ StartTransaction (at its own phase), all through the "
                                                      "run.")] = 60,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this file, as "
                                                                 "JSON.")] = None,
) -> None:
    """Two nodes behind HAProxy (docs/haproxy.cfg) on PostgreSQL and NATS, both restarted one after the
    other under load, transactions starting and stopping throughout: acknowledged messages lost,
    duplicate transactions, time until every charge point is back, latency (docs/benchmarks.md)."""
    from voltlib.bench import rolling

    url = database_url or load_settings(None).database_url
    plan = rolling.RollingPlan(database_url=url, charge_points=charge_points, meter_s=meter_s, settle_s=settle_s,
                               haproxy=haproxy, balancers=balancers, back_timeout_s=back_timeout_s,
                               ramp_timeout_s=ramp_timeout_s, tx_every=tx_every)
    try:
        result = asyncio.run(rolling.run(plan, progress=typer.echo))
    except ValueError as exc:
        raise typer.Exit(code=_fail(str(exc))) from None
    typer.echo(rolling.render(result))
    if json_out is not None:
        json_out.write_text(rolling.as_json(result) + "\n")
    if rolling.failed(result):
        raise typer.Exit(1)


@bench_app.command("fuzz")
def bench_fuzz(
    frames: Annotated[int, typer.Option("-n", "--frames", min=1, help="Hostile frames to send.")] = 10_000,
    connections: Annotated[int, typer.Option(min=1, help="Charge points sending at once.")] = 4,
    seed: Annotated[int, typer.Option(help="Same seed, same frames.")] = 1,
    database_url: DbOpt = None,
    ocpp: Annotated[str, typer.Option(help="OCPP version of the hostile charge points: 1.6 or 2.0.1.")] = "1.6",
) -> None:
    """Hostile frames over real WebSockets to a voltlib started on loopback; then a well-behaved
    charge point must be served. Fails on a hang, a traceback in the server's log, or no service."""
    from voltlib.bench import fuzz

    if ocpp not in fuzz.BY_VERSION:
        raise typer.BadParameter("1.6 or 2.0.1", param_hint="--ocpp")
    result = asyncio.run(fuzz.run(frames, connections=connections, seed=seed, database_url=database_url, ocpp=ocpp))
    typer.echo(fuzz.render(result))
    if not fuzz.passed(result):
        raise typer.Exit(1)


@bench_app.command("sharing")
def bench_sharing(
    stations: Annotated[int, typer.Option(min=1, help="Stations, each with --cars-per-station cars.")] = 200,
    cars_per_station: Annotated[int, typer.Option(min=1)] = 2,
    concurrency: Annotated[int, typer.Option(min=1, help="Operations in flight at once.")] = 64,
    database_url: Annotated[list[str] | None, typer.Option(
        "--database-url", help="Run on this store (repeatable; default: a fresh SQLite file). The database "
                               "is emptied first: give a scratch one.")] = None,
) -> None:
    """Reservations/s and completed rentals/s (badge, unplug, return, invoice), with the double-booking check."""
    from voltlib.bench.sharing import render, run

    results = [asyncio.run(run(url, stations=stations, cars_per_station=cars_per_station, concurrency=concurrency))
               for url in (database_url or [None])]  # type: ignore[list-item]
    typer.echo(render(results))
    if any(r.double_booking_winners != 1 for r in results):
        raise typer.Exit(1)


@bench_app.command("energy")
def bench_energy(repeat: Annotated[int, typer.Option(min=5, help="Re-plans timed per case.")] = 200) -> None:
    """One smart-charging re-plan: a 20-bay station and the whole Paris network, against an equal split."""
    from voltlib.bench.energy import render, run

    typer.echo(render(run(repeat)))


@bench_app.command("simulate")
def bench_simulate(
    scenario: Annotated[str, typer.Option(help="Built-in scenario or TOML file.")] = "small",
    hours: Annotated[float, typer.Option(min=0.05, max=48, help="Simulated hours.")] = 1.0,
    speed: Annotated[float, typer.Option(min=1, max=200, help="Speed asked for.")] = 200.0,
) -> None:
    """The factor of real time a whole simulated city reaches, server and simulator together."""
    from voltlib.bench.compare import free_port
    from voltlib.sim import scenario as sim_scenario
    from voltlib.sim.city import CitySimulation

    chosen = sim_scenario.load(scenario)
    result = asyncio.run(CitySimulation(chosen, port=free_port(), speed=speed, hours=hours).run())
    phases = ", ".join(f"{k} {v:g} s" for k, v in result.setup_phases.items())
    typer.echo(f"setup {result.setup_seconds:g} s: {phases}")
    typer.echo(f"| scenario | charge points | cars | simulated h | wall s | speed asked | speed reached | rentals | "
               f"lost | protocol errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
               f"| {result.scenario} | {result.bays:,} | {result.cars:,} | {result.simulated_hours:g} | "
               f"{result.wall_seconds:g} | ×{speed:g} | **×{result.speed_reached:g}** | {result.rentals_served} | "
               f"{sum(result.lost.values())} | {result.protocol_errors} |")


@bench_app.command("gbfs")
def bench_gbfs(
    seconds: Annotated[float, typer.Option(help="Seconds of load per variant.")] = 5.0,
    concurrency: Annotated[int, typer.Option(help="Keep-alive HTTP clients.")] = 32,
    rounds: Annotated[int, typer.Option(help="Fault on/off cycles for the rebuild latency.")] = 10,
) -> None:
    """Paris station_status from the GBFS cache: requests/s, and latency from a change to the feed."""
    from voltlib.bench.gbfs import render, run

    typer.echo(render(asyncio.run(run(seconds=seconds, concurrency=concurrency, rounds=rounds))))


@bench_app.command("validators")
def bench_validators(seconds: Annotated[float, typer.Option(help="Seconds per validator and payload.")] = 0.5,
                     ) -> None:
    """JSON-schema validators on OCPP 1.6 payloads (why voltlib uses jsonschema-rs), then a call's
    text to its typed message with jsonschema-rs and with the compiled schemas (voltlib.ocpp.compiled)."""
    from voltlib.bench.validators import measure, measure_paths, render

    typer.echo(render(measure(seconds)))
    typer.echo("")
    typer.echo(render(measure_paths(seconds), "text to typed message"))


def _fail(message: str) -> int:
    typer.echo(message, err=True)
    return 1


@app.command()
def conformance(
    ocpp: Annotated[str, typer.Option(help="OCPP version: 1.6, 2.0.1 or all.")] = "all",
    cases: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                               help="Another OCA case list file (central system under test) of "
                                                    "the --ocpp version; default: the lists packaged with voltlib.")
                     ] = None,
    run: Annotated[bool, typer.Option("--run", help="Run the conformance tests with pytest and fill in results.")
                   ] = False,
    markdown: Annotated[Path | None, typer.Option(help="Also write the tables to this Markdown file.")] = None,
) -> None:
    """Print each OCPP compliance case with its test (tests/conformance, tests/conformance_v201) and its result.

    The tests are those of the checkout around the working directory, else of the checkout voltlib
    runs from. Exits 1 when --run finds a failed or missing case.
    """
    from voltlib import conformance as oca

    versions = list(oca.SUITES) if ocpp == "all" else [ocpp]
    if any(v not in oca.SUITES for v in versions) or (cases is not None and len(versions) > 1):
        raise typer.BadParameter("--ocpp is 1.6, 2.0.1 or all (--cases needs one version)", param_hint="--ocpp")
    tables = {v: oca.coverage(cases, oca.find_root(Path.cwd()), run=run, version=v)[0] for v in versions}
    for version, rows in tables.items():
        typer.echo(f"## OCPP {version}\n\n{oca.render(rows)}\n")
    if markdown is not None:
        oca.write_markdown(markdown, tables, cases=cases, run=run, ocpp=ocpp)
    failing = [oca.summary(rows) for rows in tables.values()]
    if run and any(c.get("failed") or c.get("missing") for c in failing):
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
