"""Transactions: the filtered, paged list, one transaction, and an operator's close of an
abandoned one (audited; publishes TransactionStopped like a charge point's own stop)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

import msgspec
from aiohttp import web

from voltlib import events as ev
from voltlib.api import models as m
from voltlib.api.framework import (
    MAX_ID,
    PRINCIPAL,
    READ_ROLES,
    WRITE_ROLES,
    Problem,
    Query,
    Route,
    body_of,
    bool_query,
    reply,
    time_query,
    whole_number,
)
from voltlib.api.paging import page_request, paged
from voltlib.gateway.gateway import Gateway
from voltlib.ocpp.v16.messages import check_utc_range
from voltlib.store import closing, lists

TAG = "transactions"
DEFAULT_PAGE = 100


class TransactionClose(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``meter_stop`` (Wh, the register to bill up to) and ``stopped_at`` default to the transaction's
    latest register reading and its time; ``reason`` says why, for the audit log."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    meter_stop: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] | None = None
    stopped_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.stopped_at is not None:
            if self.stopped_at.tzinfo is None:
                raise ValueError("stopped_at needs its UTC offset")
            check_utc_range("stopped_at", self.stopped_at)


def transaction_routes(gateway: Gateway) -> list[Route]:
    s = gateway.services
    store, clock = s.store, s.clock

    def tx_id(request: web.Request) -> int:
        value = whole_number(request.match_info["transaction_id"], 1)
        if value is None:
            raise Problem(404, "not-found", f"no transaction {request.match_info['transaction_id']}")
        return value

    def filters(request: web.Request, charge_point: str | None) -> lists.TransactionFilter:
        since, until = time_query(request, "from"), time_query(request, "to")
        if since is not None and until is not None and until <= since:
            raise Problem(400, "invalid-query", "to must come after from", parameter="to")
        return lists.TransactionFilter(
            charge_point=charge_point or request.query.get("charge_point") or None,
            id_tag=request.query.get("id_tag") or None, open=bool_query(request, "open"), since=since,
            until=until, stop_reason=request.query.get("stop_reason") or None)

    async def listing(request: web.Request, charge_point: str | None) -> web.Response:
        where = filters(request, charge_point)
        limit, after = page_request(request, lists.TRANSACTIONS, DEFAULT_PAGE)
        page = await store.read(partial(lists.transaction_page, where=where, after=after, limit=limit))
        return paged(request, page.rows, lists.TRANSACTIONS, page)

    async def all_transactions(request: web.Request) -> web.Response:
        return await listing(request, None)

    async def cp_transactions(request: web.Request) -> web.Response:
        return await listing(request, request.match_info["cp_id"])

    async def one(request: web.Request) -> web.Response:
        row = await store.read(partial(closing.get_transaction, tx_id=tx_id(request)))
        if row is None:
            raise Problem(404, "not-found", f"no transaction {request.match_info['transaction_id']}")
        return reply(row)

    async def close(request: web.Request) -> web.Response:
        number = tx_id(request)
        order = await body_of(request, TransactionClose)
        now = clock.now()
        outcome = await store.write(partial(
            closing.close_transaction, tx_id=number, meter_stop=order.meter_stop, stopped_at=order.stopped_at,
            reason=order.reason, by=request.get(PRINCIPAL) or "?", now=now))
        if outcome.result == "unknown":
            raise Problem(404, "not-found", f"no transaction {number}")
        if outcome.result == "already_closed":
            raise Problem(409, "already-closed", outcome.detail, transaction=outcome.transaction)
        if outcome.result == "invalid":
            raise Problem(422, "invalid-close", outcome.detail)
        row = outcome.transaction
        assert row is not None
        if outcome.changed:  # committed first; car sharing, energy and the detectors hear it as a stop
            await s.bus.publish(ev.TransactionStopped(
                charge_point_id=row["charge_point_id"], at=now, transaction_id=number, meter_stop=row["meter_stop"],
                stopped_at=row["stopped_at"], reason=None, known=True))
        return reply(row)

    declared = (Query("charge_point", str, "only this charge point's"), Query("id_tag", str, "only this id tag's"),
                Query("open", bool, "true: not stopped yet; false: stopped"),
                Query("from", datetime, "started at or after (ISO 8601 with its offset)"),
                Query("to", datetime, "started before"),
                Query("stop_reason", str, "as the charge point sent it (Local, Remote, EVDisconnected, ...)"))
    many = list[m.Transaction]  # type: ignore[valid-type]
    return [
        Route("GET", "/api/v1/transactions", all_transactions, "Transactions, newest first", READ_ROLES, tag=TAG,
              returns=many, paged=True, query=declared),
        Route("GET", "/api/v1/transactions/{transaction_id}", one, "One transaction", READ_ROLES, tag=TAG,
              returns=m.Transaction),
        Route("POST", "/api/v1/transactions/{transaction_id}/close", close,
              "Close an abandoned open transaction with the meter value to bill (default: its latest register "
              "reading); audited; nothing is deleted", WRITE_ROLES, TransactionClose, tag=TAG, returns=m.Transaction),
        Route("GET", "/api/v1/charge-points/{cp_id}/transactions", cp_transactions,
              "A charge point's transactions, newest first (the same filters but charge_point)", READ_ROLES, tag=TAG,
              returns=many, paged=True, query=declared[1:]),
    ]
