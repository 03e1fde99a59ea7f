"""The operator dashboard in a real headless Chromium (Debian's package, driven by Playwright):
log in, see the Paris map with its stations, open a station, open a charge point driven by a
simulated charge point, send commands, and see a status change arrive live without a reload.

Screenshots go to test-artifacts/. Outside CI a missing Chromium skips these tests with the
command that installs it; with CI=true they fail instead (they must run there)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import PASSWORD, RunningServer, free_port, start_server
from tests.sharing import test_rebalancing as rebalancing
from voltlib.config import Settings
from voltlib.ocpp.v16.messages import MeterValue, SampledValue
from voltlib.security.credentials import hash_password
from voltlib.sharing.cities import builtin_cities, paris_snapshot
from voltlib.sharing.importer import parse_snapshot
from voltlib.sharing.store import import_snapshot, upsert_city
from voltlib.sim.chargepoint import SimOptions, SimulatedChargePoint
from voltlib.store import repo
from voltlib.store.tables import meter_values

CHROMIUM = os.environ.get("VOLTLIB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
INSTALL = "install it with: sudo apt-get install -y chromium (or set VOLTLIB_CHROMIUM to a Chromium binary)"


def _chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run on CI and Chromium is missing: {INSTALL}")
        pytest.skip(f"Chromium not found at {CHROMIUM}: {INSTALL}")
    return path


@pytest_asyncio.fixture
async def paris(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """voltlib with Autolib's 1,119 Paris stations imported (SQLite: the browser does not care)."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'voltlib.db'}", port=free_port(), command_timeout=10.0)
    runner, server = await start_server(settings)
    parsed = parse_snapshot(paris_snapshot(), car_prefix="PA")
    password_hash = hash_password(PASSWORD)

    def load(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=password_hash, soc_percent=75.0,
                        now=datetime.now(UTC))

    await server.store.write(load)
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    path = _chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=path, headless=True,
                                            args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def logged_in(browser: Any, server: RunningServer, where: str) -> tuple[Any, list[str]]:
    """A page logged in with the server's admin token at ``where``; the list collects console errors."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(f"{server.url}/dashboard/{where}")
    await page.get_by_label("API token").fill(server.token)
    await page.keyboard.press("Enter")
    return page, problems


async def test_operator_flow(paris: RunningServer, browser: Any) -> None:
    from playwright.async_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    station = parse_snapshot(paris_snapshot()).stations[0]
    cp_id = f"{station.id}-1"
    sim = SimulatedChargePoint(cp_id, paris.ws_url, password=PASSWORD,
                               options=SimOptions(connectors=1, heartbeat_interval=3600, meter_interval=3600))
    await sim.start()
    try:
        assert await sim.wait_accepted(20)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        # log in: a wrong token is refused, the right one gives an HttpOnly cookie
        await page.goto(f"{paris.url}/dashboard")
        await page.get_by_label("API token").fill("not-a-token")
        await page.keyboard.press("Enter")
        await expect(page.locator("#login-error")).to_contain_text("Unknown or revoked token")
        problems.clear()  # the refused login is an expected 401 in the console
        await page.get_by_label("API token").fill(paris.token)
        await page.keyboard.press("Enter")
        await expect(page.locator("#who")).to_contain_text("admin")
        cookie = next(c for c in await page.context.cookies() if c["name"] == "voltlib_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert cookie["value"] != paris.token

        # the map: Leaflet over the offline basemap (20 arrondissements and the Seine, no tile server),
        # one marker per station
        markers = page.locator("#station-map a.marker")
        await expect(markers).to_have_count(len(parse_snapshot(paris_snapshot()).stations))
        await expect(page.locator("#station-map path.basemap-district")).to_have_count(20)
        await expect(page.locator("#station-map path.basemap-river")).to_have_count(1)
        await expect(page.locator("#station-map .leaflet-control-attribution")).to_contain_text("Paris Open Data")
        assert await page.locator("#station-map img.leaflet-tile").count() == 0  # offline: no tiles asked for
        await expect(page.locator("#live")).to_contain_text("live")
        await page.screenshot(path=str(ARTIFACTS / "dashboard-map.png"))

        # a charge point of the simulation comes online at a bay whose car is gone: it reports the
        # bay Available, the car is marked missing, and the marker turns from 2+ cars to 1 without a reload
        two = next(s for s in parse_snapshot(paris_snapshot()).stations if s.cars == 2 and s.status == "operational")
        two_marker = page.locator(f'#station-map a.marker[data-station="{two.id}"]')
        await expect(two_marker).to_have_attribute("data-state", "ok")
        await page.evaluate("document.body.dataset.sameDocument = 'map'")
        emptied = SimulatedChargePoint(f"{two.id}-1", paris.ws_url, password=PASSWORD,
                                       options=SimOptions(connectors=1, heartbeat_interval=3600, meter_interval=3600))
        await emptied.start()
        try:
            await expect(page.locator(f'#station-map a.marker[data-station="{two.id}"]')).to_have_attribute(
                "data-state", "low", timeout=20_000)
            assert await page.evaluate("document.body.dataset.sameDocument") == "map"
        finally:
            await emptied.stop()

        # a station's popup (the marker is a link: Enter, or a click when zoomed in far enough for markers
        # not to overlap, see the field task test): cars with charge and range, free bays, power against
        # the grid limit, open alerts
        rich = next(s for s in parse_snapshot(paris_snapshot()).stations
                    if s.cars >= 2 and s.status == "operational" and s.id not in (station.id, two.id))
        await page.locator(f'#station-map a.marker[data-station="{rich.id}"]').focus()
        await page.keyboard.press("Enter")
        popup = page.locator("#station-popup")
        await expect(popup.locator("h3")).to_have_text(rich.name)
        await expect(popup.locator(".popup-availability")).to_contain_text(f"{rich.cars} cars available")
        await expect(popup.locator(".popup-availability")).to_contain_text(f"free bays of {rich.bays}")
        car_rows = popup.locator("tbody tr")
        await expect(car_rows).to_have_count(rich.cars)
        await expect(car_rows.first).to_contain_text("75 %")  # the imported state of charge, and its range
        await expect(car_rows.first).to_contain_text(re.compile(r"\d+ km"))
        await expect(popup.locator(".popup-power")).to_contain_text("kW limit")
        await expect(popup).to_contain_text("No open alert.")
        await page.screenshot(path=str(ARTIFACTS / "dashboard-map-popup.png"))

        # keyboard: the marker is a link; focus it and press Enter: the popup opens with the focus in
        # it, and leads to the station page
        marker = page.locator(f'#station-map a.marker[data-station="{station.id}"]')
        await marker.focus()
        await page.keyboard.press("Enter")
        await expect(popup.locator("h3")).to_have_text(station.name)
        await expect(popup.locator("h3")).to_be_focused()
        # a live event about the station redraws the open popup: the focus stays in it
        await page.evaluate("document.querySelector('#station-popup h3').dataset.drawn = 'before'")
        sim.change_availability(1, False)
        await expect(popup.locator("h3")).not_to_have_attribute("data-drawn", "before", timeout=20_000)
        await expect(popup.locator("h3")).to_be_focused()
        await page.evaluate("document.querySelector('#station-popup h3').dataset.drawn = 'again'")
        sim.change_availability(1, True)  # and back: the station page below shows the bay Available
        await expect(popup.locator("h3")).not_to_have_attribute("data-drawn", "again", timeout=20_000)
        await expect(popup.locator("h3")).to_be_focused()
        await popup.get_by_role("link", name="Station page").click()
        await expect(page.locator("#station-title")).to_have_text(station.name)
        await expect(page.get_by_role("link", name=f"{cp_id} / 1")).to_be_visible()
        bay_row = page.locator("tr", has=page.get_by_role("link", name=f"{cp_id} / 1"))
        await expect(bay_row).to_contain_text("Available")  # the simulated charge point's report
        await page.screenshot(path=str(ARTIFACTS / "dashboard-station.png"))

        # the charge point: its power chart (from stored meter values), then Reset and its answer
        start = datetime.now(UTC) - timedelta(minutes=30)
        readings = [MeterValue(timestamp=start + timedelta(minutes=i), sampled_value=[
            SampledValue(value=str(1000 + 50 * i)), SampledValue(value=str(3000 - 10 * i),
                                                                 measurand="Power.Active.Import", unit="W")])
            for i in range(30)]
        await paris.store.write(partial(repo.insert_ignoring_duplicates, table=meter_values,
                                        rows=repo.meter_rows(cp_id, 1, None, readings, datetime.now(UTC))))
        await page.get_by_role("link", name=f"{cp_id} / 1").click()
        await expect(page.locator("h1")).to_have_text(f"Charge point {cp_id}")
        await expect(page.get_by_role("img", name="Connector 1 power, 30 samples")).to_be_visible()
        await expect(page.locator("#cp-online")).to_contain_text("Online")
        await page.locator('form[data-command="Reset"] button').click()
        await expect(page.locator("#command-outcome")).to_contain_text("Accepted", timeout=20_000)
        assert await sim.wait_accepted(20)  # it rebooted and is back

        # ChangeAvailability Inoperative: the charge point reports Unavailable, which arrives live
        await page.reload()
        await expect(page.locator("#cp-online")).to_contain_text("Online")
        await expect(page.locator("#live")).to_contain_text("live")
        marker_js = "document.body.dataset.sameDocument = 'yes'"
        await page.evaluate(marker_js)  # lost if the page were reloaded
        await page.select_option("#ChangeAvailability-connectorId", "1")
        await page.select_option("#ChangeAvailability-type", "Inoperative")
        await page.locator('form[data-command="ChangeAvailability"] button').click()
        await expect(page.locator("#command-outcome")).to_contain_text("Accepted", timeout=20_000)
        await expect(page.locator('[data-connector="1"]')).to_have_text("Unavailable", timeout=20_000)
        await expect(page.locator("#history tbody tr").first).to_contain_text("Unavailable")
        assert await page.evaluate("document.body.dataset.sameDocument") == "yes"
        await page.screenshot(path=str(ARTIFACTS / "dashboard-charge-point.png"))

        assert problems == []
    finally:
        await sim.stop()


async def test_dashboard_refuses_members_and_needs_a_session(paris: RunningServer, browser: Any) -> None:
    page = await browser.new_page()
    response = await page.request.get(f"{paris.url}/api/v1/charge-points")
    assert response.status == 401
    response = await page.request.get(f"{paris.url}/dashboard/events")
    assert response.status == 401


async def test_member_page_reserves_a_car(paris: RunningServer, browser: Any) -> None:
    from playwright.async_api import expect

    async with httpx.AsyncClient(base_url=paris.url, timeout=30) as client:
        response = await client.post("/api/v1/members", json={
            "city": "paris", "name": "Ada", "email": "ada@example.org", "licence_number": "L000001",
            "licence_expiry": (datetime.now(UTC) + timedelta(days=365)).isoformat()})
        assert response.status_code == 201, response.text
        member = response.json()
        response = await client.patch(f"/api/v1/members/{member['member_id']}", json={"licence_verified": True},
                                      headers=paris.api_headers())
        assert response.status_code == 200, response.text
        response = await client.post("/api/v1/me/subscription", json={"plan_code": "premium"},
                                     headers={"Authorization": f"Bearer {member['token']}"})
        assert response.status_code == 200, response.text

    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(f"{paris.url}/member")
    await page.get_by_label("Member token").fill(member["token"])
    await page.keyboard.press("Enter")
    await expect(page.locator("#who")).to_have_text("Ada")
    await expect(page.locator("#invoices")).to_contain_text("subscription")
    await page.get_by_role("button", name="Reserve a car").first.click()
    await expect(page.locator("#reserve-outcome")).to_contain_text("Reserved: car")
    await expect(page.locator("#rental-state")).to_contain_text("reserved")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "member-page.png"), full_page=True)
    assert problems == []

    # an operator token cannot log in here, and a member session does not open the dashboard
    response = await page.request.get(f"{paris.url}/dashboard/session")
    assert (await response.json())["authenticated"] is False

    # the operator finds the reservation in the rentals and members search
    operator = await browser.new_page()
    operator.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    await operator.goto(f"{paris.url}/dashboard/#/rentals")
    await operator.get_by_label("API token").fill(paris.token)
    await operator.keyboard.press("Enter")
    await expect(operator.get_by_role("heading", name="Latest rentals")).to_be_visible()  # not "Rentals of undefined"
    await expect(operator.locator("main table").first).to_contain_text("reserved")
    await operator.get_by_label("Find a member").fill("ada@")
    await operator.get_by_role("link", name="Ada").click()
    await expect(operator.locator("main table").first).to_contain_text("reserved")
    await operator.get_by_role("link", name="Alerts").click()
    await expect(operator.locator("h1")).to_contain_text("Alerts")
    assert problems == []


async def test_alert_acknowledged_and_charge_point_quarantined(paris: RunningServer, browser: Any) -> None:
    """A substitute device (same identity, another model) raises an incident; the analyst
    acknowledges it and quarantines the charge point, which then reports itself Unavailable."""
    from playwright.async_api import expect

    station = parse_snapshot(paris_snapshot()).stations[5]
    cp_id = f"{station.id}-1"
    options = SimOptions(connectors=1, heartbeat_interval=3600, meter_interval=3600)
    original = SimulatedChargePoint(cp_id, paris.ws_url, password=PASSWORD, options=options)
    await original.start()
    assert await original.wait_accepted(20)
    await original.stop()
    substitute = SimulatedChargePoint(cp_id, paris.ws_url, password=PASSWORD,
                                      options=SimOptions(connectors=1, heartbeat_interval=3600, meter_interval=3600,
                                                         model="Not-a-Bluestation"))
    await substitute.start()
    try:
        assert await substitute.wait_accepted(20)
        async with httpx.AsyncClient(base_url=paris.url, headers=paris.api_headers(), timeout=30) as api:
            for _ in range(200):  # the detectors run on the bus, after the boot is answered
                incidents = (await api.get("/api/v1/security/incidents?state=open")).json()
                if any(i["charge_point_id"] == cp_id for i in incidents):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no incident for the substitute device")

        # the map shows the alert where it happens: a blinking ring on the station, listed in its popup
        page, problems = await logged_in(browser, paris, "#/map")
        ring = page.locator(f'#station-map .alert-ring[data-station="{station.id}"]')
        await expect(ring).to_have_count(1)
        await expect(ring).to_have_css("animation-name", "blink")
        await page.locator(f'#station-map a.marker[data-station="{station.id}"]').focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#station-popup .popup-alerts")).to_contain_text(cp_id)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-map-alert.png"))

        await page.goto(f"{paris.url}/dashboard/#/alerts")
        row = page.locator("tr", has=page.get_by_role("link", name=cp_id))
        await expect(row).to_be_visible()
        await row.get_by_role("button", name="Acknowledge").click()
        await expect(page.locator("#incident-outcome")).to_have_text("Acknowledge: acknowledged")
        await page.select_option("#incident-state", "acknowledged")
        row = page.locator("tr", has=page.get_by_role("link", name=cp_id))
        await expect(row).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "dashboard-alerts.png"))
        await row.get_by_role("button", name="Quarantine").click()
        outcome = page.locator("#incident-outcome")
        await expect(outcome).to_have_text(re.compile(r"^Quarantine: (?!sending)"), timeout=20_000)
        await expect(outcome).not_to_contain_text("failed")

        await page.get_by_role("link", name=cp_id).first.click()
        await expect(page.locator("#cp-quarantined")).to_have_text("In quarantine")
        await expect(page.locator('[data-connector="1"]')).to_have_text("Unavailable", timeout=20_000)
        await expect(page.get_by_role("button", name="Release from quarantine")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "dashboard-quarantine.png"))
        assert problems == []
    finally:
        await substitute.stop()


@pytest_asyncio.fixture
async def morning(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The rebalancing tests' small city at 08:00 in Paris (tests/sharing/test_rebalancing.py): its
    edge station runs out of cars and the far one, where few people are, can spare one."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'voltlib.db'}", port=free_port(),
                        time_origin=rebalancing.MORNING)
    runner, server = await start_server(settings)
    parsed = parse_snapshot(rebalancing.SNAPSHOT, car_prefix="PA")

    def seed(conn: Any) -> None:
        upsert_city(conn, builtin_cities()["paris"])
        import_snapshot(conn, "paris", parsed, security_profile=1, password_hash=hash_password(PASSWORD),
                        soc_percent=80.0, now=rebalancing.MORNING)

    await server.store.write(seed)
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_rebalancing_moves_become_field_tasks_carried_to_the_end(morning: RunningServer, browser: Any) -> None:
    """The operator opens Rebalancing, turns the most urgent recommended move into a field task,
    assigns it, and follows it to done; the car is no longer offered as a move meanwhile."""
    from playwright.async_api import expect

    page, problems = await logged_in(browser, morning, "#/rebalancing?hours=3&rentals_per_day=60")
    moves = page.locator('h2:has-text("Recommended moves") ~ table').first
    await expect(moves.locator("tbody tr")).to_have_count(1, timeout=30_000)
    first = moves.locator("tbody tr").first
    await expect(first).to_contain_text("st-far")  # a car the far station does not need, to the edge
    await expect(first).to_contain_text("no car")
    car = (await first.locator("td").first.inner_text()).strip()
    await first.get_by_role("button", name="Create task").click()
    outcome = page.locator("#rebalancing-outcome")
    await expect(outcome).to_have_text(f"Task for {car}: proposed", timeout=30_000)
    # a car with a live task is not offered again (and the task counted as done, nothing else is needed)
    await expect(page.get_by_text("No move needed.")).to_be_visible()
    tasks = page.locator('h2:has-text("Field tasks") ~ table').first
    row = tasks.locator("tr", has=page.get_by_role("cell", name=car, exact=True))
    await expect(row).to_contain_text("proposed")
    await page.get_by_label("Assign to").fill("agent-7")
    for button, reached in (("Assign", "assigned"), ("Start", "in_progress"), ("Complete", "done")):
        await row.get_by_role("button", name=button).click()
        await expect(outcome).to_have_text(re.compile(rf"^{button} task \d+: {reached}$"), timeout=30_000)
        await expect(row).to_contain_text(reached)
    await expect(row).to_contain_text("agent-7")
    await expect(row.get_by_role("button")).to_have_count(0)  # done: nothing more to do
    await page.screenshot(path=str(ARTIFACTS / "dashboard-rebalancing.png"))
    async with httpx.AsyncClient(base_url=morning.url, headers=morning.api_headers(), timeout=30) as api:
        (task,) = (await api.get("/api/v1/rebalancing/tasks?city=paris")).json()
    assert (task["car_id"], task["state"], task["assignee"]) == (car, "done", "agent-7")
    assert problems == []


async def test_field_task_drawn_as_an_arrow_on_the_map(morning: RunningServer, browser: Any) -> None:
    """A field task created through the API appears on the open map as an arrow from the donor to the
    receiving station, changes style with its state and goes away once done, all without a reload."""
    from playwright.async_api import expect

    page, problems = await logged_in(browser, morning, "#/map")
    markers = page.locator("#station-map a.marker")
    await expect(markers).to_have_count(len(parse_snapshot(rebalancing.SNAPSHOT).stations))
    await expect(page.locator("#live")).to_contain_text("live")
    await page.evaluate("document.body.dataset.sameDocument = 'map'")
    async with httpx.AsyncClient(base_url=morning.url, headers=morning.api_headers(), timeout=30) as api:
        moves = (await api.get("/api/v1/rebalancing/moves?city=paris&hours=3&rentals_per_day=60")).json()["moves"]
        move = moves[0]
        created = await api.post("/api/v1/rebalancing/tasks", json={**move, "city": "paris"})
        assert created.status_code == 201, created.text
        task = created.json()
        arrow = page.locator(f'#station-map path.task-arrow[data-task="{task["id"]}"]')
        await expect(arrow).to_have_class(re.compile(r"\btask-proposed\b"))
        await expect(page.locator(f'#station-map svg.task-head[data-task="{task["id"]}"]')).to_have_count(1)
        await expect(arrow).to_have_attribute("aria-label", re.compile(
            rf"Task {task['id']}: car {move['car_id']} from .+ to .+, proposed"))
        # a mouse click on the receiving station (few stations here: markers do not overlap) opens its popup
        await page.locator(f'#station-map a.marker[data-station="{move["to_station"]}"]').click()
        await expect(page.locator("#station-popup")).to_have_attribute("data-station", move["to_station"])
        await page.screenshot(path=str(ARTIFACTS / "dashboard-map-task.png"))
        step = await api.post(f"/api/v1/rebalancing/tasks/{task['id']}/transition",
                              json={"action": "assign", "assignee": "agent-7"})
        assert step.status_code == 200, step.text
        await expect(arrow).to_have_class(re.compile(r"\btask-assigned\b"))
        for action in ("start", "complete"):
            assert (await api.post(f"/api/v1/rebalancing/tasks/{task['id']}/transition",
                                   json={"action": action})).status_code == 200
        await expect(arrow).to_have_count(0)  # done: no longer a move to carry out
    assert await page.evaluate("document.body.dataset.sameDocument") == "map"
    assert problems == []
