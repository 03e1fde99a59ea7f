"""``/metrics`` on two nodes of one cluster (PostgreSQL or SQLite, NATS) after a one-way rental
whose charge points sit on different nodes: each node labels its own series, counts the charge
points it holds and the peer it hears, and reports the network-wide rentals, its GBFS rebuilds
its smart-charging plans and its bus consumers' queues as they are (issue 18, part 1)."""

from __future__ import annotations

import httpx

from tests.conformance.conftest import connect
from tests.integration.test_cluster import ride_across, two_nodes
from tests.integration.test_metrics import samples
from tests.sharing.conftest import seeded_city
from tests.sim.test_chargepoint import eventually

TOKEN = "metrics-secret-for-two-nodes-0123"
ORIGIN, DESTINATION = "st-a-1", "st-b-1"
Found = dict[tuple[str, frozenset[tuple[str, str]]], float]


def of(found: Found, name: str, **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels``."""
    [value] = [v for (n, ls), v in found.items() if n == name and labels.items() <= dict(ls).items()]
    return value


def _plans(*scraped: Found) -> float:
    return sum(of(found, "voltlib_smart_charging_plan_duration_seconds_count") for found in scraped)


async def _scrape(url: str) -> Found:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answer = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


async def test_each_node_reports_itself_its_peer_and_the_network(database_url: str) -> None:
    async with two_nodes(database_url, metrics_token=TOKEN) as (a, b), seeded_city(a) as city:
        member = await city.sign_up(1)
        async with connect(a, ORIGIN) as origin, connect(b, DESTINATION) as destination:
            await ride_across(city, member, origin, destination, (a, b))
            assert (await city.client.get("/gbfs/paris/station_status.json")).status_code == 200  # on A

            async def both_hear_a_peer_and_planned() -> tuple[Found, Found] | None:
                scraped = (await _scrape(a.url), await _scrape(b.url))
                heard = all(of(found, "voltlib_cluster_peers") == 1 for found in scraped)
                return scraped if heard and _plans(*scraped) >= 1 else None  # the plan runs in the background

            found_a, found_b = await eventually(both_hear_a_peer_and_planned, timeout=60)
    names = [{dict(labels)["node"] for (_, labels) in found if "node" in dict(labels)} for found in (found_a, found_b)]
    assert len(names[0]) == 1 and len(names[1]) == 1 and names[0] != names[1]  # each labels its own series
    for found in (found_a, found_b):
        assert of(found, "voltlib_charge_points_connected", ocpp_version="1.6") == 1  # one charge point each
        assert of(found, "voltlib_cluster_connected") == 1
        assert of(found, "voltlib_rentals", state="closed") == 1  # network-wide: the same on both
    assert of(found_a, "voltlib_ocpp_calls_total", action="Authorize", outcome="result") == 1
    assert not any(n == "voltlib_ocpp_calls_total" and dict(ls).get("action") == "Authorize" for n, ls in found_b)
    assert of(found_a, "voltlib_gbfs_rebuild_duration_seconds_count") >= 1  # the feed was built on A
    assert of(found_a, "voltlib_gbfs_age_seconds", system_id="paris") >= 0
    assert not any(n == "voltlib_gbfs_age_seconds" for n, _ in found_b)
    lags = [v for (n, _), v in found_a.items() if n == "voltlib_bus_consumer_lag_seconds"]
    depths = [v for (n, _), v in found_a.items() if n == "voltlib_bus_consumer_queue_depth"]
    assert lags and depths and all(v == 0 for v in lags + depths)  # settled: nothing waits
    handled = [v for (n, ls), v in found_a.items() if n == "voltlib_bus_consumer_events_total"]
    assert sum(handled) > 0
    assert _plans(found_a, found_b) >= 1  # the car charging at its bay was planned for on a node
