"""``voltlib profile …`` against a real server and simulated charge points (issue 20 parts 3 and 7),
on SQLite and PostgreSQL: the CLI runs in a thread, the server and the charge points in the
test's event loop."""

from __future__ import annotations

import contextlib
import json

from tests.conftest import PASSWORD, RunningServer
from tests.integration.test_operator_cli import cli
from voltlib.sim import SimOptions, SimulatedChargePoint

OPTIONS = SimOptions(connectors=1, call_timeout=5.0, connect_timeout=5.0, reconnect_min=0.2, reconnect_max=1.0)


async def test_an_operator_stores_installs_lists_and_clears_a_profile(server: RunningServer) -> None:
    async with contextlib.AsyncExitStack() as stack:
        posts = []
        for cp_id in ("CP-P1", "CP-P2"):
            await server.add_charge_point(cp_id)
            post = SimulatedChargePoint(cp_id, server.ws_url, password=PASSWORD, options=OPTIONS)
            await post.start()
            stack.push_async_callback(post.stop)
            assert await post.wait_accepted(10)
            posts.append(post)
        await server.add_charge_point("CP-GONE")  # known, never connected

        created = await cli(server, "profile", "create", "evening", "--purpose", "TxDefault", "--period", "0:7400",
                            "--period", "3600:3700", "--stack-level", "3", "--json")
        assert created.exit_code == 0, created.output
        profile = json.loads(created.output)
        bad = await cli(server, "profile", "create", "broken", "--purpose", "TxDefault", "--period", "60:100")
        assert bad.exit_code == 1 and "422 invalid-profile" in bad.output
        listed = await cli(server, "profile", "list")
        assert listed.exit_code == 0 and "evening" in listed.output and "3600s:3700W" in listed.output

        installed = await cli(server, "profile", "install", str(profile["id"]), "CP-P1", "CP-P2", "--json")
        assert installed.exit_code == 0, installed.output
        assert [(r["charge_point_id"], r["status"]) for r in json.loads(installed.output)] == [
            ("CP-P1", "Accepted"), ("CP-P2", "Accepted")]
        assert all(profile["charging_profile_id"] in {p.id for p in post.profiles.profiles} for post in posts)
        partly = await cli(server, "profile", "install", str(profile["id"]), "CP-GONE")
        assert partly.exit_code == 1 and "offline" in partly.output  # one did not take it: exit 1

        shown = await cli(server, "profile", "show", str(profile["id"]))
        assert "held by: CP-P1, CP-P2" in shown.output
        held = await cli(server, "profile", "held", "CP-P1")
        assert held.exit_code == 0 and "operator" in held.output and str(profile["charging_profile_id"]) in held.output
        refused = await cli(server, "profile", "delete", str(profile["id"]))
        assert refused.exit_code == 1 and "409 installed" in refused.output
        refreshed = await cli(server, "profile", "refresh", "CP-P1", "--json")
        assert [r["status"] for r in json.loads(refreshed.output)["composites"]] == ["Accepted", "Accepted"]

        for post in ("CP-P1", "CP-P2"):
            cleared = await cli(server, "profile", "clear", post, "--id", str(profile["charging_profile_id"]))
            assert cleared.exit_code == 0 and "answered, Accepted" in cleared.output, cleared.output
        assert all(post.profiles.profiles == [] for post in posts)
        deleted = await cli(server, "profile", "delete", str(profile["id"]))
        assert deleted.exit_code == 0 and "deleted" in deleted.output
