"""HTTP side of the dashboard and the member page: login/logout, session info, static assets and
the live event stream.

Dashboard URLs (under /dashboard): ``/`` the single-page app, ``/static/<file>`` its assets,
``/session`` who is logged in, ``/login`` and ``/logout`` (POST), ``/events`` Server-Sent Events,
``/map/{city}/charge-points`` which station each charge point stands at (for the map's alerts).
The member page is ``/member/`` with its own ``/member/session``, ``/member/login``, ``/member/logout``.
Data comes from the ordinary API (/api/v1, which accepts the session cookie) and the GBFS files.
"""

from __future__ import annotations

import asyncio
from functools import partial
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from aiohttp import web
from yarl import URL

from voltlib.api.framework import CSRF_HEADER, READ_ROLES, SESSION_LOOKUP, Problem, json_object, reply
from voltlib.bus import Bus
from voltlib.clock import Clock
from voltlib.security.credentials import hash_api_token
from voltlib.store import repo
from voltlib.store.db import Store
from voltlib.web.live import RESYNC, Broadcaster
from voltlib.web.mapdata import basemap_cities, charge_point_stations
from voltlib.web.sessions import Session, Sessions

PREFIX = "/dashboard"
MEMBER_PREFIX = "/member"
MEMBER_ROLES = frozenset({"member"})
COOKIE = "voltlib_session"
STATIC = resources.files("voltlib.web") / "static"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
         ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json"}
KEEPALIVE_SECONDS = 15.0


class Dashboard:
    def __init__(self, store: Store, bus: Bus, clock: Clock, *, tile_url: str = "",
                 features: dict[str, bool] | None = None) -> None:
        self.store, self.clock, self.tile_url = store, clock, tile_url
        self.sessions = Sessions()
        self.live = Broadcaster(bus)
        self.features = features or {}
        self._assets = dict(_assets(STATIC))
        self.basemaps = basemap_cities(STATIC)

    def lookup(self, request: web.Request) -> tuple[str, str, str | None] | None:
        found = self.sessions.find(request.cookies.get(COOKIE), self.clock.now())
        return None if found is None else (found.principal, found.role, found.member_id)

    def _session(self, request: web.Request, roles: frozenset[str]) -> Session | None:
        found = self.sessions.find(request.cookies.get(COOKIE), self.clock.now())
        return found if found is not None and found.role in roles else None

    def headers(self) -> dict[str, str]:
        img = "'self' data:" + (" " + _origin(self.tile_url) if self.tile_url else "")
        return {"Content-Security-Policy": f"default-src 'self'; img-src {img}; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    async def index(self, request: web.Request) -> web.Response:
        page = "member.html" if request.path.startswith(MEMBER_PREFIX) else "index.html"
        return web.Response(body=self._assets[page], content_type="text/html",
                            headers={**self.headers(), "Cache-Control": "no-cache"})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._assets.get(name)
        kind = TYPES.get(name[name.rfind("."):]) if "." in name else None
        if body is None or kind is None:
            raise Problem(404, "not-found", f"no asset {name}")
        return web.Response(body=body, content_type=kind, headers={**self.headers(), "Cache-Control": "no-cache"})

    async def session(self, request: web.Request) -> web.Response:
        found = self._session(request, _roles(request))
        info: dict[str, Any] = {"authenticated": found is not None, "tile_url": self.tile_url,
                                "basemaps": self.basemaps, "features": self.features}
        if found is not None:
            info |= {"principal": found.principal, "role": found.role, "member_id": found.member_id}
        return reply(info)

    async def map_charge_points(self, request: web.Request) -> web.Response:
        if self._session(request, READ_ROLES) is None:
            raise Problem(401, "unauthenticated", "log in first")
        city = request.match_info["city"]
        return reply(await self.store.read(partial(charge_point_stations, city=city)))

    async def login(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        token = body.get("token")
        if not isinstance(token, str) or not token.strip():
            raise Problem(422, "token-required", "send {\"token\": \"<API token>\"}")
        found = await self.store.read(partial(repo.find_api_token, token_hash=hash_api_token(token.strip())))
        if found is None:
            raise Problem(401, "unauthenticated", "unknown or revoked token")
        principal, role, member_id = found
        if role not in _roles(request):
            raise Problem(403, "forbidden", f"role {role} may not log in here")
        session_id = self.sessions.open(principal, role, self.clock.now(), member_id)
        response = reply({"authenticated": True, "principal": principal, "role": role})
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict", path="/",
                            secure=request.secure, max_age=int(self.sessions.lifetime.total_seconds()))
        return response

    async def logout(self, request: web.Request) -> web.Response:
        if request.headers.get(CSRF_HEADER[0]) != CSRF_HEADER[1]:
            raise Problem(403, "csrf", f"send {CSRF_HEADER[0]}: {CSRF_HEADER[1]}")
        self.sessions.close(request.cookies.get(COOKIE))
        response = reply({"authenticated": False})
        response.del_cookie(COOKIE, path="/")
        return response

    async def events(self, request: web.Request) -> web.StreamResponse:
        found = self._session(request, READ_ROLES)
        if found is None:
            raise Problem(401, "unauthenticated", "log in first")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        client = self.live.join(found.role)
        try:
            await response.write(b"event: hello\ndata: {}\n\n")
            while True:
                if client.overflowed:
                    client.overflowed = False
                    await response.write(b"event: " + RESYNC + b"\ndata: {}\n\n")
                try:
                    data = await asyncio.wait_for(client.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                await response.write(b"data: " + data + b"\n\n")
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            self.live.leave(client)
        return response

    def install(self, app: web.Application) -> None:
        app[SESSION_LOOKUP] = self.lookup
        app.router.add_get(PREFIX, _redirect)
        app.router.add_get(PREFIX + "/", self.index)
        app.router.add_get(PREFIX + "/static/{name:.+}", self.static)
        app.router.add_get(PREFIX + "/session", self.session)
        app.router.add_get(PREFIX + "/map/{city}/charge-points", self.map_charge_points)
        app.router.add_post(PREFIX + "/login", self.login)
        app.router.add_post(PREFIX + "/logout", self.logout)
        app.router.add_get(PREFIX + "/events", self.events)
        app.router.add_get(MEMBER_PREFIX, _redirect)
        app.router.add_get(MEMBER_PREFIX + "/", self.index)
        app.router.add_get(MEMBER_PREFIX + "/static/{name}", self.static)
        app.router.add_get(MEMBER_PREFIX + "/session", self.session)
        app.router.add_post(MEMBER_PREFIX + "/login", self.login)
        app.router.add_post(MEMBER_PREFIX + "/logout", self.logout)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.path + "/")


def _assets(folder: Traversable, prefix: str = "") -> list[tuple[str, bytes]]:
    """Every file under the static folder by its path ("app.js", "vendor/leaflet/leaflet.js")."""
    out: list[tuple[str, bytes]] = []
    for p in folder.iterdir():
        if p.is_file():
            out.append((prefix + p.name, p.read_bytes()))
        elif p.is_dir():
            out += _assets(p, f"{prefix}{p.name}/")
    return out


def _roles(request: web.Request) -> frozenset[str]:
    """Who may log in through this URL: operators on /dashboard, members on /member."""
    return MEMBER_ROLES if request.path.startswith(MEMBER_PREFIX) else READ_ROLES


def _origin(url: str) -> str:
    """Scheme and host of a tile URL template such as https://tiles.example/{z}/{x}/{y}.png."""
    parsed = URL(url.replace("{", "").replace("}", ""))
    return f"{parsed.scheme}://{parsed.host}" if parsed.host else "'none'"
