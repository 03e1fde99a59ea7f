"""The dashboard against a simulated city: voltlib runs the `small` scenario (real WebSockets, one
simulated charge point per bay, members renting on simulated time), then a real headless Chromium
looks at what the operator sees: the stations on the map, a station's cars, bays and its power
against the grid limit set by smart charging, and the rentals the members made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.web.test_browser import ARTIFACTS, browser
from voltlib.sim import scenario
from voltlib.sim.city import CitySimulation

__all__ = ["browser"]  # the fixture, shared with the other browser tests


async def test_the_dashboard_shows_a_simulated_city(browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    chosen = scenario.load("small")
    seen: dict[str, Any] = {}

    def ready(base: str, token: str) -> None:
        seen.update(base=base, token=token)

    async def look() -> None:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(f"{seen['base']}/dashboard")
        await page.get_by_label("API token").fill(seen["token"])
        await page.keyboard.press("Enter")
        await expect(page.locator("#who")).to_contain_text("admin")
        await expect(page.locator("#station-map a.marker")).to_have_count(len(chosen.snapshot().stations))
        station = next(s for s in chosen.snapshot().stations if s.cars >= 2)
        await page.goto(f"{seen['base']}/dashboard#/station/paris/{station.id}")
        await expect(page.locator("#station-power")).to_contain_text("kW limit")
        await expect(page.locator("#station-power")).to_contain_text(f"{station.bays * 3.0 * 0.5:.1f} kW limit")
        await expect(page.locator("#station-availability")).to_contain_text("free bays")
        await page.goto(f"{seen['base']}/dashboard#/rentals")
        await expect(page.locator("main table tbody tr").first).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard-simulated-city.png"))
        seen["problems"] = problems

    sim = CitySimulation(chosen, port=free_port(), workdir=tmp_path, hours=0.5, speed=120, on_ready=ready, hold=look)
    report = await sim.run()
    assert seen["problems"] == []
    assert report.protocol_errors == 0 and report.rentals_served >= 1
