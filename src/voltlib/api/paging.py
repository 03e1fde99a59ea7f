"""One paging convention for every list endpoint: ``?limit=`` (capped at :data:`MAX_PAGE`) and an
opaque ``?cursor=``; the body stays the list it always was, and the next page's address comes in a
``Link: <…>; rel="next"`` header (RFC 8288), absent on the last page (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from voltlib.api.framework import Problem, int_query, reply
from voltlib.store.pages import CursorError, Key, Order, Page

MAX_PAGE = 1000  # rows per page, whatever ?limit= asks
PAGE_PARAMETERS = ("limit", "cursor")


def page_request(request: web.Request, order: Order, default: int) -> tuple[int, Key | None]:
    """(limit, key to continue after) of the request; a 400 problem naming a bad parameter."""
    limit = min(int_query(request, "limit", default, low=1), MAX_PAGE)
    text = request.query.get("cursor", "")
    if text == "":
        return limit, None
    try:
        return limit, order.decode(text)
    except CursorError as exc:
        raise Problem(400, "invalid-query", f"cursor is not one this list gave ({exc})",
                      parameter="cursor") from None


def paged(request: web.Request, body: Any, order: Order, page: Page) -> web.Response:
    """``body`` (the page's rows, shaped by the endpoint) with the Link to the next page, if any."""
    response = reply(body)
    if page.next is not None:
        response.headers["Link"] = f'<{next_url(request, order, page.next)}>; rel="next"'
    return response


def next_url(request: web.Request, order: Order, key: Key) -> str:
    """The same path and filters, continued after ``key`` (relative: right behind any proxy)."""
    return str(request.rel_url.update_query(cursor=order.encode(key)))
