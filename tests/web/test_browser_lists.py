"""The dashboard's lists follow the API's pages (issue 20): a network with more charge points (and
members) than one page of the API holds (1,000) shows them all in a real headless Chromium, not
just the first page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from tests.conftest import RunningServer, free_port, start_server
from tests.web.test_browser import ARTIFACTS, browser, logged_in
from voltlib.api.paging import MAX_PAGE
from voltlib.config import Settings
from voltlib.store import repo

__all__ = ["browser"]  # the fixture, shared with the other browser tests

CHARGE_POINTS = MAX_PAGE + 5  # two pages


@pytest_asyncio.fixture
async def crowded(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """voltlib (SQLite: the browser does not care) with one page and a bit of charge points."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'voltlib.db'}", port=free_port(), command_timeout=10.0)
    runner, server = await start_server(settings)
    now = datetime.now(UTC)

    def register(conn: Any) -> None:
        for i in range(CHARGE_POINTS):
            repo.add_charge_point(conn, f"CP-{i:05}", registration="Pending" if i == CHARGE_POINTS - 1 else "Accepted",
                                  security_profile=0, password_hash=None, certificate_fingerprint=None, now=now)

    await server.store.write(register)
    try:
        yield server
    finally:
        await runner.cleanup()


async def test_the_charge_point_list_shows_every_page(crowded: RunningServer, browser: Any) -> None:
    from playwright.async_api import expect

    async with httpx.AsyncClient(base_url=crowded.url, headers=crowded.api_headers()) as api:
        first = await api.get("/api/v1/charge-points")
    assert len(first.json()) == MAX_PAGE and "next" in first.links  # the API alone gives the first page

    page, problems = await logged_in(browser, crowded, "#/charge-points")
    rows = page.locator("main table tbody tr")
    await expect(rows).to_have_count(CHARGE_POINTS, timeout=30_000)
    await expect(page.locator("#cp-count")).to_have_text(f"({CHARGE_POINTS})")
    last = rows.last  # by id, ascending: the last one is on the second page
    await expect(last).to_contain_text(f"CP-{CHARGE_POINTS - 1:05}")
    await expect(last).to_contain_text("Pending")
    await last.get_by_role("link").click()
    await expect(page.locator("main h1")).to_contain_text(f"CP-{CHARGE_POINTS - 1:05}")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-charge-points-paged.png"))
    assert problems == []
