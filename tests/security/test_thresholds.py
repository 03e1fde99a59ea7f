"""Detector thresholds without code: the security_thresholds setting and the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
import pytest

from tests.conftest import RunningServer, free_port
from voltlib.config import Settings
from voltlib.security import audit
from voltlib.security.credentials import hash_api_token
from voltlib.security.detectors import Tuning
from voltlib.security.thresholds import ThresholdError, as_wire, tuning_from
from voltlib.server import build_app
from voltlib.store import repo


def test_wire_values_become_typed_thresholds_and_back() -> None:
    tuning = tuning_from({"auth_window": 300, "failed_auth_per_identity": 3, "physical_codes": ["door", "hood"],
                          "data_transfer_vendors": ["ACME"], "flag_new_address": False, "power_margin": 1.2})
    assert tuning.auth_window == timedelta(minutes=5) and tuning.failed_auth_per_identity == 3
    assert tuning.physical_codes == ("door", "hood") and tuning.data_transfer_vendors == frozenset({"ACME"})
    assert tuning.flag_new_address is False and tuning.power_margin == 1.2
    wire = as_wire(tuning)
    assert wire["auth_window"] == 300.0 and wire["physical_codes"] == ["door", "hood"]
    assert tuning_from(wire) == tuning
    assert tuning_from({}) == Tuning()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"failed_auth_per_idnetity": 3}, "unknown thresholds"),
    ({"failed_auth_per_identity": 0}, "positive"),
    ({"failed_auth_per_identity": 2.5}, "whole number"),
    ({"auth_window": "10m"}, "seconds"),
    ({"flag_new_address": 1}, "true or false"),
    ({"physical_codes": "door"}, "list"),
    ({"reboots": True}, "positive"),
])
def test_bad_thresholds_are_refused_by_name(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        tuning_from(overrides)


def test_a_bad_threshold_in_the_settings_stops_the_server(tmp_path: object) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/t.db", port=free_port(),
                        security_thresholds={"reboots": -1})
    with pytest.raises(ThresholdError, match="reboots"):
        build_app(settings)


async def test_operators_read_and_security_changes_thresholds_live_and_audited(server: RunningServer) -> None:
    now = datetime.now(UTC)
    await server.store.write(partial(repo.add_api_token, name="op", role="operator",
                                     token_hash=hash_api_token("vlt_op_thresholds"), now=now))
    operator = {"Authorization": "Bearer vlt_op_thresholds"}
    async with httpx.AsyncClient(base_url=server.url, headers=server.api_headers(), timeout=15) as api:
        before = (await api.get("/api/v1/security/thresholds")).json()
        assert before["failed_auth_per_identity"] == 5 and before["auth_window"] == 600.0
        changed = await api.put("/api/v1/security/thresholds", json={"failed_auth_per_identity": 2})
        assert changed.status_code == 200 and changed.json()["failed_auth_per_identity"] == 2
        bad = await api.put("/api/v1/security/thresholds", json={"reboots": 0})
        assert bad.status_code == 422 and bad.json()["title"] == "invalid-threshold"
        assert (await api.get("/api/v1/security/thresholds")).json()["reboots"] == 4  # nothing half-applied
        assert (await api.put("/api/v1/security/thresholds", json={"reboots": 9}, headers=operator)).status_code == 403
    entries = await server.store.read(audit.read_chain)
    assert [(e["action"], e["detail"]) for e in entries] == [("security.thresholds.changed",
                                                              {"failed_auth_per_identity": 2})]
