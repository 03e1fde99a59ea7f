"""Car-sharing events: one charge point's in order, different charge points' side by side (their
writes then share group commits rather than queueing behind each other at city peaks)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from voltlib import events as ev
from voltlib.config import Settings
from voltlib.server import SHARING_KEY, build_app

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _status(cp_id: str, status: str, connector_id: int = 1) -> ev.ConnectorStatusChanged:
    return ev.ConnectorStatusChanged(charge_point_id=cp_id, at=AT, connector_id=connector_id, previous="Charging",
                                     status=status, error_code="NoError", vendor_error_code=None, info=None,
                                     expected=False)


async def test_one_charge_points_events_in_order_others_side_by_side(tmp_path: Path) -> None:
    app = build_app(Settings.model_validate({"database_url": f"sqlite:///{tmp_path / 'lanes.db'}"}))
    sharing = app[SHARING_KEY]
    log: list[tuple[str, str]] = []
    first_started = asyncio.Event()

    async def recording(event: ev.Event) -> None:  # stands in for the database work of each event
        name = f"{event.charge_point_id}:{len([e for e in log if e[1].startswith(event.charge_point_id)]) // 2}"
        log.append(("start", name))
        if name == "A:0":
            first_started.set()
            await asyncio.sleep(0.2)
        log.append(("end", name))

    sharing.on_event = recording  # type: ignore[method-assign]
    await sharing._dispatch(_status("A", "Available"))
    await first_started.wait()
    await sharing._dispatch(_status("A", "Available"))
    await sharing._dispatch(_status("B", "Available"))
    await sharing._dispatch(_status("B", "Charging"))  # nothing for car sharing: never dispatched
    await sharing._dispatch(_status("B", "Available", connector_id=0))  # the whole charge point: neither
    await sharing.settle()
    assert sorted(log) == sorted([("start", "A:0"), ("end", "A:0"), ("start", "A:1"), ("end", "A:1"),
                                  ("start", "B:0"), ("end", "B:0")])
    assert log.index(("end", "A:0")) < log.index(("start", "A:1"))  # in order within a charge point
    assert log.index(("end", "B:0")) < log.index(("end", "A:0"))  # B did not wait behind A's slow event
    assert not sharing._lanes  # finished lanes are dropped
    await app[SHARING_KEY].close()
    app[SHARING_KEY].gateway.services.store.close()
