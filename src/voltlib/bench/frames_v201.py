"""The OCPP 2.0.1 frames a simulated charging station of the gateway benchmark sends and answers.

The same names as :mod:`voltlib.bench.frames_v16`. A 2.0.1 station's meter values travel inside
its transaction: after boot and status it opens one (``TransactionEvent`` Started at cable
plug-in, its own transactionId), then every sample is a ``TransactionEvent`` Updated
(triggerReason MeterValuePeriodic, the next seqNo) carrying the same nine sampled values as a 1.6
MeterValues: energy register, power, current and voltage per phase, state of charge. 2.0.1
writes a value as a number and its unit in ``unitOfMeasure``.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec

from voltlib.bench import frames_v16
from voltlib.bench.frames_v16 import _CLOCK, Meter, heartbeat

__all__ = ["SUBPROTOCOL", "MeterSim", "answer_server_call", "boot_notification", "heartbeat", "status_notification",
           "transaction_started"]

SUBPROTOCOL = "ocpp2.0.1"
_encode = msgspec.json.encode


def station_transaction_id(index: int) -> str:
    return f"bench-{index:08d}"


def boot_notification(uid: str, index: int) -> str:
    payload = {"chargingStation": {"vendorName": "VoltlibBench", "model": "SimCP-22",
                                   "serialNumber": f"SIM{index:08d}", "firmwareVersion": "1.0.0"},
               "reason": "PowerUp"}
    return _encode([2, uid, "BootNotification", payload]).decode()


def status_notification(uid: str, evse_id: int = 1, status: str = "Occupied") -> str:
    payload = {"timestamp": _CLOCK.now(), "connectorStatus": status, "evseId": evse_id, "connectorId": 1}
    return _encode([2, uid, "StatusNotification", payload]).decode()


def transaction_started(uid: str, index: int) -> str | None:
    """The transaction the meter values belong to, opened when the cable was plugged in."""
    payload = {"eventType": "Started", "timestamp": _CLOCK.now(), "triggerReason": "CablePluggedIn", "seqNo": 0,
               "transactionInfo": {"transactionId": station_transaction_id(index), "chargingState": "EVConnected"},
               "evse": {"id": 1, "connectorId": 1}}
    return _encode([2, uid, "TransactionEvent", payload]).decode()


class MeterSim:
    """A charging session's meter: TransactionEvent(Updated) frames from a template."""

    def __init__(self, index: int, rng: random.Random, transaction_id: int) -> None:
        del transaction_id  # 1.6's id chosen by the central system; a 2.0.1 station names its own
        self.seq_no = 0
        self.meter = Meter(rng)

        def sv(value: str, measurand: str, unit: str, phase: str = "", loc: str = "Outlet") -> str:
            ph = f',"phase":"{phase}"' if phase else ""
            return (f'{{"value":{value},"context":"Sample.Periodic","measurand":"{measurand}"{ph},'
                    f'"location":"{loc}","unitOfMeasure":{{"unit":"{unit}"}}}}')

        self._fixed = self.meter.fixed_samples(sv)
        self._info = f'"transactionInfo":{{"transactionId":"{station_transaction_id(index)}"}}'

    def frame(self, uid: str) -> str:
        self.seq_no += 1
        m = self.meter
        m.advance()
        # each sample its own instant (to the millisecond, as 2.0.1 allows): a charging session's
        # readings are minutes apart, never two of one instant
        now = _CLOCK.now_ms()
        energy = (f'{{"value":{m.energy_wh:.0f},"context":"Sample.Periodic",'
                  f'"measurand":"Energy.Active.Import.Register","location":"Outlet","unitOfMeasure":{{"unit":"Wh"}}}}')
        soc = (f'{{"value":{m.soc:.0f},"context":"Sample.Periodic","measurand":"SoC","location":"EV",'
               f'"unitOfMeasure":{{"unit":"Percent"}}}}')
        return (f'[2,"{uid}","TransactionEvent",{{"eventType":"Updated","timestamp":"{now}",'
                f'"triggerReason":"MeterValuePeriodic","seqNo":{self.seq_no},{self._info},'
                f'"meterValue":[{{"timestamp":"{now}","sampledValue":[{energy},{self._fixed},{soc}]}}]}}]')


#: Answers to CALLs a central system may send to the simulated station.
_SERVER_CALL_ANSWERS: dict[str, dict[str, Any]] = {
    "CancelReservation": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "DataTransfer": {"status": "Accepted"},
    "GetLocalListVersion": {"versionNumber": 0},
    "RequestStartTransaction": {"status": "Accepted"},
    "RequestStopTransaction": {"status": "Accepted"},
    "ReserveNow": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "SendLocalList": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
}


def answer_server_call(frame: list[Any]) -> str:
    """CALLRESULT (or CALLERROR NotImplemented) for a CALL sent by the server."""
    return frames_v16.answer_server_call(frame, _SERVER_CALL_ANSWERS)
