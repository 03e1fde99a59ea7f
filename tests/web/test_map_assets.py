"""The operator map's files: the vendored Leaflet and the offline basemap are served from the
package (no CDN), are listed in the package data so that an installed wheel has them, and the
station-of-charge-point index the map uses for alerts needs a session."""

from __future__ import annotations

import fnmatch
import json
import tomllib
from pathlib import Path

import aiohttp

from .conftest import WebServer

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src/voltlib/web/static"


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def test_every_static_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["voltlib"]
    files = [p.relative_to(ROOT / "src/voltlib").as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert "web/static/vendor/leaflet/leaflet.js" in files and "web/static/basemap/paris.json" in files
    # setuptools globs do not cross folders: each file must match a pattern of its own folder
    missing = [f for f in files if not any(fnmatch.fnmatch(f, p) and f.count("/") == p.count("/") for p in patterns)]
    assert missing == []


def test_vendored_leaflet_says_its_version_and_licence() -> None:
    leaflet = STATIC / "vendor/leaflet"
    readme = (leaflet / "README.md").read_text()
    assert "leaflet@1.9.4" in readme and "BSD 2-Clause" in (leaflet / "LICENSE").read_text()
    assert b"1.9.4" in (leaflet / "leaflet.js").read_bytes()[:200]


def test_paris_basemap_has_the_twenty_arrondissements_and_the_seine() -> None:
    data = json.loads((STATIC / "basemap/paris.json").read_text())
    kinds = [f["properties"]["kind"] for f in data["features"]]
    assert kinds.count("district") == 20 and kinds.count("river") == 1
    assert "ODbL" in data["attribution"]
    for feature in data["features"]:  # rounded to 5 decimals, inside Paris
        line = feature["geometry"]["coordinates"][0]
        assert all(2.2 < x < 2.5 and 48.8 < y < 48.91 and round(x, 5) == x for x, y in line)


async def test_map_files_are_served_and_the_index_needs_a_session(web_server: WebServer) -> None:
    base = f"{web_server.url}/dashboard"
    async with _client() as http:
        for path, kind in (("vendor/leaflet/leaflet.js", "text/javascript"),
                           ("vendor/leaflet/leaflet.css", "text/css"),
                           ("vendor/leaflet/images/layers.png", "image/png"),
                           ("basemap/paris.json", "application/json")):
            response = await http.get(f"{base}/static/{path}")
            assert response.status == 200 and response.content_type == kind, path
        for path in ("vendor/leaflet/LICENSE", "vendor/../app.py", "vendor/leaflet/nope.js", "basemap/"):
            assert (await http.get(f"{base}/static/{path}")).status == 404, path
        assert (await http.get(f"{base}/map/paris/charge-points")).status == 401
        assert (await http.post(f"{base}/login", json={"token": web_server.token})).status == 200
        session = await (await http.get(f"{base}/session")).json()
        assert session["basemaps"] == ["paris"] and session["tile_url"] == ""
        index = await http.get(f"{base}/map/paris/charge-points")
        assert index.status == 200 and await index.json() == {}  # this server has no bays in its database
