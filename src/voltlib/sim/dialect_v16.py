"""The OCPP 1.6J dialect of the simulated charge point.

Status notifications per connector (and connector 0), StartTransaction / MeterValues /
StopTransaction (the central system numbers the transaction: the messages queued after a
StartTransaction get its id when it is answered), Authorize with an idTag, and an answer to every
central-system command of OCPP 1.6 (core, smart charging, reservation, local list, firmware, remote
trigger, security whitepaper).
"""

from __future__ import annotations

from voltlib.ocpp.v16.messages import COMMANDS
from voltlib.sim.dialect import Answer, Dialect
from voltlib.sim.hardware import Connector, Transaction, truthy, valid_value
from voltlib.sim.link import Payload, Queued
from voltlib.sim.profiles import parse_time

TRIGGERABLE = frozenset({"BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
                         "Heartbeat", "MeterValues", "StatusNotification"})
EXTENDED_TRIGGERABLE = frozenset({"BootNotification", "LogStatusNotification", "FirmwareStatusNotification",
                                  "Heartbeat", "MeterValues", "SignChargePointCertificate", "StatusNotification"})
_PLAIN_FIRMWARE_STATUSES = frozenset({"Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed",
                                      "Installing", "Installed"})


class DialectV16(Dialect):
    version = "1.6"
    subprotocol = "ocpp1.6"
    COMMANDS = frozenset(COMMANDS)

    # ==== what the post says of itself ===========================================================

    def boot_payload(self) -> Payload:
        cp, o = self.cp, self.cp.options
        return {"chargePointVendor": o.vendor[:20], "chargePointModel": o.model[:20],
                "firmwareVersion": cp.firmware_version[:50],
                "meterType": "SimMeter", "chargePointSerialNumber": (o.serial_number or cp.cp_id)[:25]}

    def report_status(self, connector_id: int) -> None:
        self.cp._enqueue("StatusNotification", self.status_payload(connector_id), persistent=False)

    def status_payload(self, connector_id: int) -> Payload:
        cp = self.cp
        if connector_id == 0:
            status, error = ("Available" if cp.operative else "Unavailable"), "NoError"
        else:
            c = cp.connectors[connector_id]
            status, error = c.status, c.error_code
        return {"connectorId": connector_id, "errorCode": error, "status": status,
                "timestamp": cp._stamp(cp.clock.now())}

    def authorize_request(self, id_tag: str) -> tuple[str, Payload]:
        return "Authorize", {"idTag": id_tag}

    def authorize_info(self, result: Payload) -> Payload:
        info: Payload = result["idTagInfo"]
        return info

    def meter_value(self, c: Connector, context: str) -> Payload:
        """One MeterValue of the measurands in MeterValuesSampledData."""
        cp = self.cp
        cp._advance(c)
        wanted = cp.sampled_measurands()
        values: list[Payload] = []
        if "Energy.Active.Import.Register" in wanted:
            values.append({"value": str(int(c.energy_wh)), "context": context, "measurand":
                           "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"})
        if "Power.Active.Import" in wanted:
            values.append({"value": str(int(c.power_w)), "context": context, "measurand": "Power.Active.Import",
                           "location": "Outlet", "unit": "W"})
        if "SoC" in wanted and c.car is not None and c.car.battery_wh is not None:
            values.append({"value": f"{c.car.soc:.1f}", "context": context, "measurand": "SoC", "location": "EV",
                           "unit": "Percent"})
        return {"timestamp": cp._stamp(cp.clock.now()), "sampledValue": values}

    def transaction_started(self, c: Connector, tx: Transaction, trigger: str) -> None:
        payload: Payload = {"connectorId": tx.connector_id, "idTag": tx.id_tag, "meterStart": tx.meter_start,
                            "timestamp": self.cp._stamp(tx.started_at)}
        if tx.reservation_id is not None:
            payload["reservationId"] = tx.reservation_id
        self.cp._enqueue("StartTransaction", payload, tx)

    def transaction_sampled(self, c: Connector, tx: Transaction) -> None:
        self.cp._enqueue("MeterValues", {"connectorId": c.connector_id, "transactionId": 0,
                                         "meterValue": [self.meter_value(c, "Sample.Periodic")]}, tx)

    def transaction_stopped(self, c: Connector, tx: Transaction, reason: str, id_tag: str | None) -> None:
        end = self.meter_value(c, "Transaction.End")
        assert tx.stopped_at is not None and tx.meter_stop is not None
        payload: Payload = {"transactionId": 0, "meterStop": tx.meter_stop, "timestamp": self.cp._stamp(tx.stopped_at),
                            "reason": reason, "transactionData": [end]}
        if id_tag is not None:
            payload["idTag"] = id_tag
        self.cp._enqueue("StopTransaction", payload, tx)

    # ==== the outbox =============================================================================

    def resolved(self, item: Queued) -> Payload | None:
        """The payload to send, with the central system's transaction id filled in (None: drop it)."""
        tx = item.transaction
        if tx is None or item.action == "StartTransaction":
            return item.payload
        if tx.transaction_id is None:
            if item.action == "StopTransaction":
                return None  # its StartTransaction was never accepted: nothing to stop
            return {k: v for k, v in item.payload.items() if k != "transactionId"}
        return {**item.payload, "transactionId": tx.transaction_id}

    def answered(self, item: Queued, result: Payload) -> None:
        cp = self.cp
        tx = item.transaction
        if tx is not None:
            cp.acknowledged.append((item.action, int(result["transactionId"]) if item.action == "StartTransaction"
                                    else tx.transaction_id))
        else:
            super().answered(item, result)
        if item.action == "StartTransaction" and tx is not None:
            tx.transaction_id = int(result["transactionId"])
            info: Payload = result.get("idTagInfo", {})
            tx.id_tag_status = str(info.get("status", "Invalid"))
            cp._cache(tx.id_tag, info)
            tx.confirmed.set()
            c = cp.connectors[tx.connector_id]
            if (tx.id_tag_status != "Accepted" and c.transaction is tx
                    and truthy(cp.configuration["StopTransactionOnInvalidId"].value)):
                cp.stop_transaction(tx.connector_id, reason="DeAuthorized")
        elif item.action == "StopTransaction" and "idTagInfo" in result and "idTag" in item.payload:
            cp._cache(str(item.payload["idTag"]), result["idTagInfo"])

    # ==== central-system commands ================================================================

    # -- core --

    def _on_RemoteStartTransaction(self, p: Payload) -> Answer:
        cp = self.cp
        id_tag = str(p["idTag"])
        connector_id = p.get("connectorId")
        chosen: Connector | None = None
        if connector_id is None:
            free = [c for c in cp.connectors.values() if c.transaction is None
                    and c.status in ("Available", "Preparing", "Finishing")]
            with_car = [c for c in free if c.car is not None]
            chosen = (with_car or free)[0] if (with_car or free) else None
        else:
            chosen = cp.connectors.get(int(connector_id))
        if chosen is None or chosen.transaction is not None or chosen.status in ("Unavailable", "Faulted"):
            return {"status": "Rejected"}, None
        if chosen.reservation is not None and id_tag not in (chosen.reservation.id_tag,
                                                             chosen.reservation.parent_id_tag):
            return {"status": "Rejected"}, None
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}, None
        target = chosen.connector_id

        async def start() -> None:
            if (truthy(cp.configuration["AuthorizeRemoteTxRequests"].value)
                    and await cp.authorize(id_tag) != "Accepted"):
                return
            if cp.connectors[target].transaction is not None:
                return
            tx = cp.start_transaction(target, id_tag, trigger="RemoteStart")
            if profile is not None:
                cp.profiles.install(target, profile, tx.transaction_id or -tx.local_id)
                cp._refresh(cp.connectors[target])

        return {"status": "Accepted"}, start

    def _on_RemoteStopTransaction(self, p: Payload) -> Answer:
        cp = self.cp
        wanted = int(p["transactionId"])
        found = cp.transaction_by(lambda tx: tx.transaction_id == wanted)
        if found is None:
            return {"status": "Rejected"}, None
        connector_id = found.connector_id

        async def stop() -> None:
            cp.stop_transaction(connector_id, reason="Remote")

        return {"status": "Accepted"}, stop

    def _on_Reset(self, p: Payload) -> Answer:
        kind = str(p["type"])

        async def reboot() -> None:
            await self.cp.reboot(hard=kind == "Hard")

        return {"status": "Accepted"}, reboot

    def _on_UnlockConnector(self, p: Payload) -> Answer:
        connector_id = int(p["connectorId"])
        if connector_id not in self.cp.connectors:
            return {"status": "NotSupported"}, None

        async def unlock() -> None:
            await self.cp.unlock(connector_id)

        return {"status": "Unlocked"}, unlock

    def _on_ChangeAvailability(self, p: Payload) -> Answer:
        return {"status": self.cp.change_availability(int(p["connectorId"]), p["type"] == "Operative")}, None

    def _on_GetConfiguration(self, p: Payload) -> Answer:
        configuration = self.cp.configuration
        keys: list[str] = list(p.get("key") or configuration)
        known: list[Payload] = []
        unknown: list[str] = []
        for key in keys:
            entry = configuration.get(key)
            if entry is None:
                unknown.append(key[:50])
                continue
            item: Payload = {"key": key, "readonly": entry.readonly}
            if not entry.write_only:
                item["value"] = entry.value[:500]
            known.append(item)
        answer: Payload = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return answer, None

    def _on_ChangeConfiguration(self, p: Payload) -> Answer:
        cp = self.cp
        key, value = str(p["key"]), str(p["value"])
        entry = cp.configuration.get(key)
        if entry is None:
            return {"status": "NotSupported"}, None
        if entry.readonly or not valid_value(key, entry, value):
            return {"status": "Rejected"}, None
        entry.value = value.strip().lower() if entry.kind == "bool" else value.strip() if entry.kind == "int" else value
        if key == "HeartbeatInterval":
            cp.on_heartbeat_interval(int(value))
        elif key == "AuthorizationKey":
            cp.password = value  # used from the next connection on
        elif key == "MeterValueSampleInterval":
            cp.on_sample_interval(int(value))
        return {"status": "Accepted"}, None

    def _on_ClearCache(self, p: Payload) -> Answer:
        self.cp.auth_cache.clear()
        return {"status": "Accepted"}, None

    def _on_DataTransfer(self, p: Payload) -> Answer:
        return {"status": "UnknownVendorId"}, None

    # -- local authorization list --

    def _on_GetLocalListVersion(self, p: Payload) -> Answer:
        cp = self.cp
        if not truthy(cp.configuration["LocalAuthListEnabled"].value):
            return {"listVersion": -1}, None
        return {"listVersion": cp.local_list_version}, None

    def _on_SendLocalList(self, p: Payload) -> Answer:
        cp = self.cp
        if not truthy(cp.configuration["LocalAuthListEnabled"].value):
            return {"status": "NotSupported"}, None
        version, entries = int(p["listVersion"]), list(p.get("localAuthorizationList") or [])
        if len(entries) > int(cp.configuration["SendLocalListMaxLength"].value):
            return {"status": "Failed"}, None
        if p["updateType"] == "Full":
            if any("idTagInfo" not in e for e in entries):
                return {"status": "Failed"}, None
            new_list = {str(e["idTag"]): dict(e["idTagInfo"]) for e in entries}
        else:
            if version <= cp.local_list_version:
                return {"status": "VersionMismatch"}, None
            new_list = dict(cp.local_list)
            for e in entries:
                if "idTagInfo" in e:
                    new_list[str(e["idTag"])] = dict(e["idTagInfo"])
                else:
                    new_list.pop(str(e["idTag"]), None)
        if len(new_list) > int(cp.configuration["LocalAuthListMaxLength"].value):
            return {"status": "Failed"}, None
        cp.local_list, cp.local_list_version = new_list, version
        return {"status": "Accepted"}, None

    # -- reservation --

    def _on_ReserveNow(self, p: Payload) -> Answer:
        cp = self.cp
        connector_id = int(p["connectorId"])
        if connector_id == 0 and not truthy(cp.configuration["ReserveConnectorZeroSupported"].value):
            return {"status": "Rejected"}, None
        status = cp.reserve(connector_id, int(p["reservationId"]), str(p["idTag"]), p.get("parentIdTag"),
                            parse_time(str(p["expiryDate"])))
        return {"status": status}, None

    def _on_CancelReservation(self, p: Payload) -> Answer:
        return {"status": "Accepted" if self.cp.cancel_reservation(int(p["reservationId"])) else "Rejected"}, None

    # -- smart charging --

    def _on_SetChargingProfile(self, p: Payload) -> Answer:
        return {"status": self.cp.install_profile(int(p["connectorId"]), p["csChargingProfiles"])}, None

    def _on_ClearChargingProfile(self, p: Payload) -> Answer:
        removed = self.cp.clear_profiles(p.get("id"), p.get("connectorId"), p.get("chargingProfilePurpose"),
                                         p.get("stackLevel"))
        return {"status": "Accepted" if removed else "Unknown"}, None

    def _on_GetCompositeSchedule(self, p: Payload) -> Answer:
        cp = self.cp
        connector_id = int(p["connectorId"])
        tx = cp.connectors[connector_id].transaction if connector_id in cp.connectors else None
        found = cp.composite_schedule(connector_id, int(p["duration"]), str(p.get("chargingRateUnit") or "W"),
                                      tx.transaction_id if tx else None)
        if found is None:
            return {"status": "Rejected"}, None
        now, schedule = found
        return {"status": "Accepted", "connectorId": connector_id, "scheduleStart": cp._stamp(now),
                "chargingSchedule": schedule}, None

    # -- remote trigger --

    def _on_TriggerMessage(self, p: Payload) -> Answer:
        return self._trigger(str(p["requestedMessage"]), p.get("connectorId"), TRIGGERABLE, extended=False)

    def _on_ExtendedTriggerMessage(self, p: Payload) -> Answer:
        return self._trigger(str(p["requestedMessage"]), p.get("connectorId"), EXTENDED_TRIGGERABLE, extended=True)

    def _trigger(self, message: str, connector_id: int | None, supported: frozenset[str], *,
                 extended: bool) -> Answer:
        if message not in supported:
            return {"status": "NotImplemented"}, None
        if connector_id is not None and connector_id != 0 and connector_id not in self.cp.connectors:
            return {"status": "Rejected"}, None
        return {"status": "Accepted"}, lambda: self._send_triggered(message, connector_id, extended)

    async def _send_triggered(self, message: str, connector_id: int | None, extended: bool) -> None:
        cp = self.cp
        if message == "BootNotification":
            if not cp.accepted.is_set():
                cp._boot_now.set()
                return
            result = await cp._call("BootNotification", self.boot_payload())
            cp.registration = str(result["status"])
            if cp.registration == "Accepted" and int(result.get("interval", 0)) > 0:
                cp._set_heartbeat(int(result["interval"]))
        elif message == "Heartbeat":
            await cp._call("Heartbeat", {})
        elif message == "StatusNotification":
            ids = [connector_id] if connector_id is not None else [0, *cp.connectors]
            for i in ids:
                await cp._call("StatusNotification", self.status_payload(i))
        elif message == "MeterValues":
            ids = [connector_id] if connector_id else list(cp.connectors)
            for i in ids:
                c = cp.connectors[i]
                payload: Payload = {"connectorId": i, "meterValue": [self.meter_value(c, "Trigger")]}
                if c.transaction is not None and c.transaction.transaction_id is not None:
                    payload["transactionId"] = c.transaction.transaction_id
                await cp._call("MeterValues", payload)
        elif message == "DiagnosticsStatusNotification":
            await cp._call("DiagnosticsStatusNotification", {"status": cp.diagnostics_status})
        elif message == "FirmwareStatusNotification":
            if extended:
                await cp._call("SignedFirmwareStatusNotification", {"status": cp.firmware_status})
            else:
                status = cp.firmware_status if cp.firmware_status in _PLAIN_FIRMWARE_STATUSES else "Idle"
                await cp._call("FirmwareStatusNotification", {"status": status})
        elif message == "LogStatusNotification":
            await cp._call("LogStatusNotification", {"status": cp.log_status})
        elif message == "SignChargePointCertificate":
            await cp._call("SignCertificate", {"csr": self._csr()})

    def _csr(self) -> str:
        """A PEM certificate signing request for a fresh key, CN = the charge point's identity."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.cp.cp_id),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.cp.options.vendor)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    # -- firmware, diagnostics, logs --

    def _on_GetDiagnostics(self, p: Payload) -> Answer:
        cp = self.cp
        name = f"diagnostics-{cp.cp_id}-{cp.clock.now():%Y%m%dT%H%M%S}.log"[:255]

        async def upload() -> None:
            for status in ("Uploading", "Uploaded"):
                cp.diagnostics_status = status
                await cp._call("DiagnosticsStatusNotification", {"status": status})
                await cp._sleep(cp.options.step_delay)
            cp.diagnostics_status = "Idle"

        return {"fileName": name}, upload

    def _on_UpdateFirmware(self, p: Payload) -> Answer:
        cp = self.cp
        retrieve = parse_time(str(p["retrieveDate"]))

        async def update() -> None:
            delay = (retrieve - cp.clock.now()).total_seconds()
            if delay > 0:
                await cp._sleep(min(delay, 3600.0))
            for status in ("Downloading", "Downloaded", "Installing", "Installed"):
                cp.firmware_status = status
                await cp._call("FirmwareStatusNotification", {"status": status})
                await cp._sleep(cp.options.step_delay)
            cp.install_firmware()

        return {}, update

    def _on_SignedUpdateFirmware(self, p: Payload) -> Answer:
        cp = self.cp
        request_id = int(p["requestId"])
        retrieve = parse_time(str(p["firmware"]["retrieveDateTime"]))

        async def update() -> None:
            delay = (retrieve - cp.clock.now()).total_seconds()
            if delay > 0:
                await cp._sleep(min(delay, 3600.0))
            for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
                cp.firmware_status = status
                await cp._call("SignedFirmwareStatusNotification", {"status": status, "requestId": request_id})
                await cp._sleep(cp.options.step_delay)
            cp.install_firmware()

        return {"status": "Accepted"}, update

    def _on_GetLog(self, p: Payload) -> Answer:
        cp = self.cp
        request_id = int(p["requestId"])
        name = f"{str(p['logType']).lower()}-{cp.cp_id}-{request_id}.log"[:255]

        async def upload() -> None:
            for status in ("Uploading", "Uploaded"):
                cp.log_status = status
                await cp._call("LogStatusNotification", {"status": status, "requestId": request_id})
                await cp._sleep(cp.options.step_delay)
            cp.log_status = "Idle"

        return {"status": "Accepted", "filename": name}, upload

    # -- certificates (security whitepaper): this simulated hardware keeps no certificate store --

    def _on_CertificateSigned(self, p: Payload) -> Answer:
        return {"status": "Rejected"}, None

    def _on_InstallCertificate(self, p: Payload) -> Answer:
        return {"status": "Rejected"}, None

    def _on_GetInstalledCertificateIds(self, p: Payload) -> Answer:
        return {"status": "NotFound"}, None

    def _on_DeleteCertificate(self, p: Payload) -> Answer:
        return {"status": "NotFound"}, None
