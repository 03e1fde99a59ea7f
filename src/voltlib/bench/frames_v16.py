"""The OCPP 1.6J frames a simulated charge point of the gateway benchmark sends and answers.

Frames are formatted from templates, so building one costs a couple of microseconds and the load
generator stays cheap. :mod:`voltlib.bench.frames_v201` has the same names for 2.0.1.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

SUBPROTOCOL = "ocpp1.6"

_encode = msgspec.json.encode


class _Clock:
    """UTC ISO-8601 timestamp, recomputed at most once per second."""

    def __init__(self) -> None:
        self._sec = -1
        self._text = ""

    def now(self) -> str:
        return self._second(int(time.time()))

    def now_ms(self) -> str:
        """To the millisecond: the second's text is cached, the milliseconds written each time."""
        t = time.time()
        sec = int(t)
        return f"{self._second(sec)[:-1]}.{int((t - sec) * 1000):03d}Z"

    def _second(self, sec: int) -> str:
        if sec != self._sec:
            self._sec = sec
            self._text = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._text


_CLOCK = _Clock()


def boot_notification(uid: str, index: int) -> str:
    payload = {
        "chargePointVendor": "VoltlibBench",
        "chargePointModel": "SimCP-22",
        "chargePointSerialNumber": f"SIM{index:08d}",
        "firmwareVersion": "1.0.0",
    }
    return _encode([2, uid, "BootNotification", payload]).decode()


def status_notification(uid: str, connector_id: int = 1, status: str = "Charging") -> str:
    payload = {
        "connectorId": connector_id,
        "errorCode": "NoError",
        "status": status,
        "timestamp": _CLOCK.now(),
    }
    return _encode([2, uid, "StatusNotification", payload]).decode()


def heartbeat(uid: str) -> str:
    return f'[2,"{uid}","Heartbeat",{{}}]'


class Meter:
    """A charging session's meter, drawn from the seed: the register, the session's power, voltage
    and current per phase, the car's state of charge. Each version's frames write it in its words."""

    def __init__(self, rng: random.Random) -> None:
        self.energy_wh = rng.uniform(1_000.0, 5_000_000.0)
        self.power = rng.choice((3_680.0, 7_360.0, 11_040.0, 22_080.0))
        self.volts = rng.uniform(225.0, 235.0)
        self.amps = self.power / (3 * self.volts)
        self.wh_per_sample = self.power / 3600.0  # as if sampled every second
        self.soc = rng.uniform(10.0, 80.0)

    def advance(self) -> None:
        self.energy_wh += self.wh_per_sample
        if self.soc < 100.0:
            self.soc = min(100.0, self.soc + 0.001)

    def fixed_samples(self, sv: Callable[..., str]) -> str:
        """The seven samples that stay the same through the session, each written by ``sv(value,
        measurand, unit, phase)``: power, then current and voltage per phase."""
        fixed = [sv(f"{self.power:.0f}", "Power.Active.Import", "W")]
        fixed += [sv(f"{self.amps:.1f}", "Current.Import", "A", p) for p in ("L1", "L2", "L3")]
        fixed += [sv(f"{self.volts:.1f}", "Voltage", "V", p) for p in ("L1-N", "L2-N", "L3-N")]
        return ",".join(fixed)


class MeterSim:
    """A charging session's meter: produces realistic MeterValues CALL frames.

    connectorId 1, a transactionId, one meterValue with a timestamp and nine
    sampledValues (energy register, power, current and voltage per phase, SoC).
    The text is formatted from a template, so building a frame costs a couple
    of microseconds and the client stays cheap.
    """

    def __init__(self, index: int, rng: random.Random, transaction_id: int) -> None:
        self.transaction_id = transaction_id
        self.meter = Meter(rng)

        def sv(value: str, measurand: str, unit: str, phase: str = "", loc: str = "Outlet") -> str:
            ph = f',"phase":"{phase}"' if phase else ""
            return (
                f'{{"value":"{value}","context":"Sample.Periodic","format":"Raw",'
                f'"measurand":"{measurand}"{ph},"location":"{loc}","unit":"{unit}"}}'
            )

        self._fixed = self.meter.fixed_samples(sv)
        self._head = f'"MeterValues",{{"connectorId":1,"transactionId":{transaction_id},'

    def frame(self, uid: str) -> str:
        m = self.meter
        m.advance()
        energy = (
            f'{{"value":"{m.energy_wh:.0f}","context":"Sample.Periodic","format":"Raw",'
            f'"measurand":"Energy.Active.Import.Register","location":"Outlet","unit":"Wh"}}'
        )
        soc = (
            f'{{"value":"{m.soc:.0f}","context":"Sample.Periodic","format":"Raw",'
            f'"measurand":"SoC","location":"EV","unit":"Percent"}}'
        )
        return (
            f'[2,"{uid}",{self._head}"meterValue":[{{"timestamp":"{_CLOCK.now()}",'
            f'"sampledValue":[{energy},{self._fixed},{soc}]}}]}}]'
        )


#: Answers to CALLs a central system may send to the simulated charge point.
_SERVER_CALL_ANSWERS: dict[str, dict[str, Any]] = {
    "ChangeConfiguration": {"status": "Accepted"},
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "TriggerMessage": {"status": "Accepted"},
    "RemoteStartTransaction": {"status": "Accepted"},
    "RemoteStopTransaction": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "ClearCache": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "DataTransfer": {"status": "Accepted"},
    "GetLocalListVersion": {"listVersion": 0},
    "SendLocalList": {"status": "Accepted"},
}


def answer_server_call(frame: list[Any], answers: dict[str, dict[str, Any]] = _SERVER_CALL_ANSWERS) -> str:
    """CALLRESULT (or CALLERROR NotImplemented) for a CALL sent by the server."""
    uid = frame[1]
    action = frame[2] if len(frame) > 2 else None
    payload = answers.get(action) if isinstance(action, str) else None
    if payload is None:
        return _encode([4, uid, "NotImplemented", "not simulated", {}]).decode()
    return _encode([3, uid, payload]).decode()


def transaction_started(uid: str, index: int) -> str | None:
    """1.6 needs no transaction opened before its MeterValues (they name one by id): nothing to send."""
    return None
