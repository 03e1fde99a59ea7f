"""Id tags beyond one at a time: delete one (its history stays), export all and import many as CSV
(:mod:`voltlib.domain.idtag_csv`; validated whole before anything is stored; idempotent)."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from voltlib.api import models as m
from voltlib.api.framework import MAX_BODY_BYTES, PRINCIPAL, READ_ROLES, WRITE_ROLES, Problem, Route, reply
from voltlib.domain import idtag_csv
from voltlib.gateway.gateway import Gateway
from voltlib.store import idtag_admin

TAG = "id tags"
CSV_TYPE = "text/csv"


def id_tag_routes(gateway: Gateway) -> list[Route]:
    s = gateway.services
    store, clock = s.store, s.clock

    async def remove(request: web.Request) -> web.Response:
        tag = request.match_info["id_tag"]
        outcome = await store.write(partial(idtag_admin.delete_id_tag, id_tag=tag, by=request.get(PRINCIPAL) or "?",
                                            now=clock.now()))
        if outcome == "unknown":
            raise Problem(404, "not-found", f"no id tag {tag}")
        if outcome != "deleted":
            whose = "a member's badge" if outcome == "member_badge" else "a car's token"
            raise Problem(409, outcome.replace("_", "-"), f"{tag} is {whose}: car sharing owns it (block a badge "
                          "with POST /api/v1/badges/{id_tag}/block)")
        return reply({"id_tag": tag, "deleted": True})

    async def export(request: web.Request) -> web.Response:
        rows = await store.read(idtag_admin.export_id_tags)
        return web.Response(text=idtag_csv.render(rows), content_type=CSV_TYPE, charset="utf-8",
                            headers={"Content-Disposition": 'attachment; filename="id-tags.csv"'})

    async def import_csv(request: web.Request) -> web.Response:
        if request.content_type != CSV_TYPE:
            raise Problem(415, "unsupported-media-type", f"send the CSV as Content-Type: {CSV_TYPE}")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise Problem(413, "body-too-large", f"the body is over {MAX_BODY_BYTES} bytes: import in several files")
        try:
            text = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400, "invalid-encoding", "the CSV must be UTF-8") from None
        if "\x00" in text:
            raise Problem(422, "invalid-csv", "the CSV holds a NUL character",
                          errors=[{"row": text[:text.index("\x00")].count("\n") + 1, "column": None,
                                   "detail": "a NUL character"}])
        parsed = idtag_csv.parse(text)
        if parsed.errors:
            raise Problem(422, "invalid-csv", f"{parsed.error_count} error(s); nothing was imported",
                          errors=[e.as_dict() for e in parsed.errors], error_count=parsed.error_count)
        counts = await store.write(partial(idtag_admin.import_id_tags, rows=parsed.rows,
                                           by=request.get(PRINCIPAL) or "?", now=clock.now()))
        return reply({"rows": len(parsed.rows), **counts.as_dict()})

    columns = ", ".join(idtag_csv.COLUMNS)
    return [
        Route("DELETE", "/api/v1/id-tags/{id_tag}", remove, "Delete an id tag: unknown to authorisation from now "
              "on; the transactions it started stay (audited; not a member badge nor a car token)", WRITE_ROLES,
              tag=TAG, returns=m.IdTagDeleted),
        Route("GET", "/api/v1/id-tags/export", export, f"Every id tag as CSV ({columns})", READ_ROLES, tag=TAG,
              returns_media=CSV_TYPE),
        Route("POST", "/api/v1/id-tags/import", import_csv, f"Create or change id tags from CSV (text/csv; header "
              f"{columns}, id_tag required; at most {idtag_csv.MAX_ROWS} rows); all rows are checked first: any "
              "error is a 422 listing each with its row number, and nothing is stored; idempotent", WRITE_ROLES,
              tag=TAG, body_media=CSV_TYPE, returns=m.IdTagImport),
    ]
