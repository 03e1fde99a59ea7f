"""OCA OCPP 1.6 conformance, central system under test: configuration, local authorization
list, firmware and diagnostics (core, local auth list management and firmware management profiles)."""

from __future__ import annotations

from ocpp.v16 import call, call_result

from tests.conformance.conftest import Api, Station, bring_online, connect, now_iso, wait_until
from tests.conftest import RunningServer

CP = "OCTT-CP"


async def _online_command(server: RunningServer, api: Api, action: str, payload: dict[str, object],
                          reply: object | None = None) -> tuple[Station, dict[str, object]]:
    await server.add_charge_point(CP)
    async with connect(server, CP) as cp:
        await bring_online(cp)
        if reply is not None:
            cp.replies[action] = reply
        row = await api.command(CP, action, payload)
    assert len(cp.got(action)) == 1
    assert row["state"] == "answered"
    return cp, row


CONFIGURATION = [
    {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
    {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
    {"key": "NumberOfConnectors", "readonly": True, "value": "1"},
    {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,FirmwareManagement,RemoteTrigger"},
]


async def test_TC_019_1_RetrieveAllConfigurationKeys(server: RunningServer, api: Api) -> None:
    cp, row = await _online_command(server, api, "GetConfiguration", {},
                                    call_result.GetConfiguration(configuration_key=CONFIGURATION))
    assert cp.got("GetConfiguration") == [{}]
    assert row["response"] == {"configurationKey": CONFIGURATION}


async def test_TC_019_2_RetrieveSpecificConfigurationKey(server: RunningServer, api: Api) -> None:
    def answer(key: list[str]) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(configuration_key=[c for c in CONFIGURATION if c["key"] in key])

    cp, row = await _online_command(server, api, "GetConfiguration", {"key": ["MeterValueSampleInterval"]}, answer)
    assert cp.got("GetConfiguration") == [{"key": ["MeterValueSampleInterval"]}]
    assert row["response"] == {"configurationKey": [CONFIGURATION[1]]}


async def test_TC_021_ChangeSetConfiguration(server: RunningServer, api: Api) -> None:
    await server.add_charge_point(CP)
    settings = {c["key"]: c["value"] for c in CONFIGURATION}
    async with connect(server, CP) as cp:
        await bring_online(cp)

        def change(key: str, value: str) -> call_result.ChangeConfiguration:
            settings[key] = value
            return call_result.ChangeConfiguration(status="Accepted")

        def get(key: list[str]) -> call_result.GetConfiguration:
            return call_result.GetConfiguration(configuration_key=[{"key": k, "readonly": False, "value": settings[k]}
                                                                   for k in key])

        cp.replies["ChangeConfiguration"] = change
        cp.replies["GetConfiguration"] = get
        changed = await api.command(CP, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "15"})
        read = await api.command(CP, "GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert cp.got("ChangeConfiguration") == [{"key": "MeterValueSampleInterval", "value": "15"}]
    assert changed["response"] == {"status": "Accepted"}
    assert read["response"] == {"configurationKey": [{"key": "MeterValueSampleInterval", "readonly": False,
                                                      "value": "15"}]}


async def test_TC_040_1_ConfigurationKeys_NotSupported(server: RunningServer, api: Api) -> None:
    _, row = await _online_command(server, api, "ChangeConfiguration", {"key": "OCTTUnknownKey", "value": "1"},
                                   call_result.ChangeConfiguration(status="NotSupported"))
    assert row["response"] == {"status": "NotSupported"}


async def test_TC_040_2_ConfigurationKeys_InvalidValue(server: RunningServer, api: Api) -> None:
    _, row = await _online_command(server, api, "ChangeConfiguration",
                                   {"key": "MeterValueSampleInterval", "value": "-1"},
                                   call_result.ChangeConfiguration(status="Rejected"))
    assert row["response"] == {"status": "Rejected"}


async def test_TC_042_1_GetLocalListVersion_NotSupported(server: RunningServer, api: Api) -> None:
    _, row = await _online_command(server, api, "GetLocalListVersion", {},
                                   call_result.GetLocalListVersion(list_version=-1))
    assert row["response"] == {"listVersion": -1}


async def test_TC_042_2_GetLocalListVersion_Empty(server: RunningServer, api: Api) -> None:
    _, row = await _online_command(server, api, "GetLocalListVersion", {},
                                   call_result.GetLocalListVersion(list_version=0))
    assert row["response"] == {"listVersion": 0}


LOCAL_LIST = [{"idTag": "OCTT-LOCAL-1", "idTagInfo": {"status": "Accepted"}},
              {"idTag": "OCTT-LOCAL-2", "idTagInfo": {"status": "Blocked"}}]


async def test_TC_043_1_SendLocalAuthorizationList_NotSupported(server: RunningServer, api: Api) -> None:
    _, row = await _online_command(server, api, "SendLocalList",
                                   {"listVersion": 1, "updateType": "Full", "localAuthorizationList": LOCAL_LIST},
                                   call_result.SendLocalList(status="NotSupported"))
    assert row["response"] == {"status": "NotSupported"}


async def test_TC_043_3_SendLocalAuthorizationList_Failed(server: RunningServer, api: Api) -> None:
    _, row = await _online_command(server, api, "SendLocalList",
                                   {"listVersion": 1, "updateType": "Full", "localAuthorizationList": LOCAL_LIST},
                                   call_result.SendLocalList(status="Failed"))
    assert row["response"] == {"status": "Failed"}


async def _local_list(server: RunningServer, api: Api, update_type: str, version: int,
                      entries: list[dict[str, object]]) -> None:
    await server.add_charge_point(CP)
    held: dict[str, object] = {"version": 0}
    async with connect(server, CP) as cp:
        await bring_online(cp)

        def store_list(list_version: int, update_type: str, **_: object) -> call_result.SendLocalList:
            held["version"] = list_version
            return call_result.SendLocalList(status="Accepted")

        cp.replies["SendLocalList"] = store_list
        cp.replies["GetLocalListVersion"] = lambda: call_result.GetLocalListVersion(list_version=held["version"])
        payload = {"listVersion": version, "updateType": update_type, "localAuthorizationList": entries}
        sent = await api.command(CP, "SendLocalList", payload)
        read = await api.command(CP, "GetLocalListVersion", {})
    got = cp.got("SendLocalList")[0]
    assert (got["list_version"], got["update_type"]) == (version, update_type)
    assert [e["id_tag"] for e in got["local_authorization_list"]] == [e["idTag"] for e in entries]
    assert sent["response"] == {"status": "Accepted"}
    assert read["response"] == {"listVersion": version}


async def test_TC_043_4_SendLocalAuthorizationList_Full(server: RunningServer, api: Api) -> None:
    await _local_list(server, api, "Full", 1, LOCAL_LIST)


async def test_TC_043_5_SendLocalAuthorizationList_Differential(server: RunningServer, api: Api) -> None:
    # one entry changed, one removed (no idTagInfo = delete)
    await _local_list(server, api, "Differential", 2, [
        {"idTag": "OCTT-LOCAL-1", "idTagInfo": {"status": "Blocked"}}, {"idTag": "OCTT-LOCAL-2"}])


async def _firmware(server: RunningServer, api: Api, statuses: list[str], reboot: bool) -> None:
    await server.add_charge_point(CP)
    location = "https://firmware.example.com/octt/cp-2.0.bin"
    retrieve = now_iso()
    async with connect(server, CP) as cp:
        await bring_online(cp)

        async def update(**_: object) -> None:
            for status in statuses:
                if status == "Installed" and reboot:
                    return  # reported after the reboot below
                await cp.send(call.FirmwareStatusNotification(status=status))

        cp.follow_ups["UpdateFirmware"] = update
        row = await api.command(CP, "UpdateFirmware", {"location": location, "retrieveDate": retrieve, "retries": 2})
        await cp.settle()
        assert (await api.charge_point(CP))["firmware_status"] == statuses[-2 if reboot else -1]
    assert cp.got("UpdateFirmware")[0]["location"] == location
    assert (row["state"], row["response"]) == ("answered", {})
    if reboot:
        async with connect(server, CP, station=cp):
            assert (await cp.boot(firmware_version="2.0")).status == "Accepted"
            await cp.send(call.FirmwareStatusNotification(status="Installed"))
        detail = await api.charge_point(CP)
        assert (detail["firmware_status"], detail["firmware_version"]) == ("Installed", "2.0")
    else:
        assert (await api.charge_point(CP))["firmware_status"] == statuses[-1]


async def test_TC_044_1_FirmwareUpdate_DownloadAndInstall(server: RunningServer, api: Api) -> None:
    await _firmware(server, api, ["Downloading", "Downloaded", "Installing", "Installed"], reboot=True)


async def test_TC_044_2_FirmwareUpdate_DownloadFailed(server: RunningServer, api: Api) -> None:
    await _firmware(server, api, ["Downloading", "DownloadFailed"], reboot=False)


async def test_TC_044_3_FirmwareUpdate_InstallationFailed(server: RunningServer, api: Api) -> None:
    await _firmware(server, api, ["Downloading", "Downloaded", "Installing", "InstallationFailed"], reboot=False)


async def _diagnostics(server: RunningServer, api: Api, final: str) -> None:
    await server.add_charge_point(CP)
    location = "ftp://diagnostics.example.com/octt/"
    async with connect(server, CP) as cp:
        await bring_online(cp)

        async def upload(**_: object) -> None:
            await cp.send(call.DiagnosticsStatusNotification(status="Uploading"))
            await cp.send(call.DiagnosticsStatusNotification(status=final))

        cp.replies["GetDiagnostics"] = call_result.GetDiagnostics(file_name="diag-octt.zip")
        cp.follow_ups["GetDiagnostics"] = upload
        row = await api.command(CP, "GetDiagnostics", {"location": location, "retries": 1, "retryInterval": 30})
        await cp.settle()
    assert cp.got("GetDiagnostics") == [{"location": location, "retries": 1, "retry_interval": 30}]
    assert (row["state"], row["response"]) == ("answered", {"fileName": "diag-octt.zip"})

    async def reported() -> bool:
        return (await api.charge_point(CP))["diagnostics_status"] == final

    await wait_until(reported)


async def test_TC_045_1_GetDiagnostics(server: RunningServer, api: Api) -> None:
    await _diagnostics(server, api, "Uploaded")


async def test_TC_045_2_GetDiagnostics_UploadFailed(server: RunningServer, api: Api) -> None:
    await _diagnostics(server, api, "UploadFailed")
