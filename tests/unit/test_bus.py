"""The in-process event bus and event serialisation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from voltlib import events as ev
from voltlib.bus import SCOPES, LocalBus

NOW = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def started(tx: int) -> ev.TransactionStarted:
    return ev.TransactionStarted(charge_point_id="CP", at=NOW, transaction_id=tx, connector_id=1, id_tag="T",
                                 id_tag_status="Accepted", meter_start=0, started_at=NOW, reservation_id=None)


async def test_subscribers_get_only_their_types_in_order() -> None:
    bus = LocalBus()
    got: list[int] = []
    everything: list[str] = []

    async def on_start(event: ev.Event) -> None:
        assert isinstance(event, ev.TransactionStarted)
        got.append(event.transaction_id)

    async def on_any(event: ev.Event) -> None:
        everything.append(type(event).__name__)

    bus.subscribe(on_start, ev.TransactionStarted)
    bus.subscribe(on_any)
    for tx in range(5):
        await bus.publish(started(tx))
    await bus.publish(ev.HeartbeatReceived(charge_point_id="CP", at=NOW))
    await bus.drain()
    assert got == [0, 1, 2, 3, 4]
    assert everything == ["TransactionStarted"] * 5 + ["HeartbeatReceived"]
    await bus.close()


async def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = LocalBus()
    seen: list[int] = []

    async def broken(event: ev.Event) -> None:
        raise RuntimeError("bug in a subscriber")

    async def fine(event: ev.Event) -> None:
        assert isinstance(event, ev.TransactionStarted)
        seen.append(event.transaction_id)

    bus.subscribe(broken, name="broken")
    bus.subscribe(fine)
    await bus.publish(started(1))
    await bus.publish(started(2))
    await bus.drain()
    assert seen == [1, 2]
    await bus.close()


async def test_a_full_subscriber_queue_applies_back_pressure_instead_of_dropping() -> None:
    bus = LocalBus(queue_size=2)
    release = asyncio.Event()
    seen: list[int] = []

    async def slow(event: ev.Event) -> None:
        await release.wait()
        assert isinstance(event, ev.TransactionStarted)
        seen.append(event.transaction_id)

    bus.subscribe(slow)
    publisher = asyncio.create_task(_publish_many(bus, 6))
    await asyncio.sleep(0.05)
    assert not publisher.done()  # blocked on the full queue, not dropping
    release.set()
    await publisher
    await bus.drain()
    assert seen == list(range(6))
    await bus.close()


async def _publish_many(bus: LocalBus, n: int) -> None:
    for tx in range(n):
        await bus.publish(started(tx))


def test_events_round_trip_through_bytes_for_an_external_broker() -> None:
    event = ev.SecurityIncident(charge_point_id="CP", at=NOW, kind="auth_failed", severity="high",
                                source="127.0.0.9", detail={"status": 401})
    data = ev.encode(event)
    assert b'"topic":"security.incident"' in data
    assert ev.decode(data) == event
    assert ev.decode(ev.encode(started(7))) == started(7)


async def test_a_watcher_sees_its_types_inline_and_never_holds_up_a_publisher() -> None:
    bus = LocalBus(queue_size=2)
    seen: list[str] = []
    bus.watch(lambda event: seen.append(type(event).__name__), ev.TransactionStarted)
    for tx in range(50):  # far more than any queue size: a watcher has no queue to fill
        await bus.publish(started(tx))
    await bus.publish(ev.HeartbeatReceived(charge_point_id="CP", at=NOW))
    assert seen == ["TransactionStarted"] * 50  # already there when publish returned, heartbeat filtered out
    (stats,) = bus.stats()
    assert (stats.kind, stats.handled, stats.failures) == ("watcher", 50, 0)


async def test_a_failing_watcher_is_counted_and_the_subscribers_still_get_the_event() -> None:
    bus = LocalBus()
    got: list[int] = []

    def broken(event: ev.Event) -> None:
        raise RuntimeError("bug in a watcher")

    async def fine(event: ev.Event) -> None:
        assert isinstance(event, ev.TransactionStarted)
        got.append(event.transaction_id)

    bus.watch(broken, name="broken")
    bus.subscribe(fine, name="fine")
    await bus.publish(started(3))
    await bus.drain()
    assert got == [3]
    stats = {s.name: s for s in bus.stats()}
    assert stats["broken"].failures == 1 and stats["fine"].handled == 1
    await bus.close()


async def test_stats_show_how_far_behind_a_subscriber_fell_and_how_often_publishers_waited() -> None:
    bus = LocalBus(queue_size=3)
    release = asyncio.Event()

    async def slow(event: ev.Event) -> None:
        await release.wait()

    bus.subscribe(slow, name="slow")
    publisher = asyncio.create_task(_publish_many(bus, 6))
    await asyncio.sleep(0.05)
    (stats,) = bus.stats()
    assert stats.publisher_waits >= 1 and stats.high_water == 3  # full, and the publisher waited
    release.set()
    await publisher
    await bus.drain()
    (stats,) = bus.stats()
    assert stats.handled == 6 and stats.queued == 0
    await bus.close()


async def test_scopes_pick_this_node_events_other_nodes_events_or_both() -> None:
    """publish: this node's events (node + network scope); publish_remote: another node's (network + remote)."""
    bus = LocalBus()
    got: dict[str, list[int]] = {"node": [], "network": [], "remote": []}
    watched: dict[str, list[int]] = {"node": [], "network": [], "remote": []}

    def recorder(into: list[int]) -> Callable[[ev.Event], Awaitable[None]]:
        async def handler(event: ev.Event) -> None:
            assert isinstance(event, ev.TransactionStarted)
            into.append(event.transaction_id)
        return handler

    for scope in SCOPES:
        bus.subscribe(recorder(got[scope]), ev.TransactionStarted, scope=scope)
        bus.watch(lambda event, into=watched[scope]: into.append(event.transaction_id),  # type: ignore[attr-defined]
                  ev.TransactionStarted, scope=scope)
    await bus.publish(started(1))
    await bus.publish_remote(started(2))
    await bus.drain()
    expected = {"node": [1], "network": [1, 2], "remote": [2]}
    assert got == expected and watched == expected
    assert bus.remote_types() == (ev.TransactionStarted,)
    assert sorted(s.scope for s in bus.stats()) == sorted(SCOPES * 2)
    await bus.close()


def test_a_misspelt_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="scope"):
        LocalBus().subscribe(lambda event: asyncio.sleep(0), scope="nodes")  # type: ignore[arg-type]
