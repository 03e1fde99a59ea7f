"""`voltlib bench validators`: how fast each JSON-schema validator checks OCPP 1.6 payloads (and a
2.0.1 TransactionEvent with meter values), and how fast the session turns a call's text into its
typed message, both ways.

These are the measurements behind the choice of jsonschema-rs in ``voltlib.ocpp.schemas`` and of
the compiled one-pass path in ``voltlib.ocpp.compiled``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from voltlib.ocpp import compiled, frames, schemas, versions

PAYLOADS: dict[str, dict[str, Any]] = {
    "MeterValues": {"connectorId": 1, "transactionId": 7, "meterValue": [{
        "timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "3000", "measurand": "Power.Active.Import", "unit": "W"},
            {"value": "13.1", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
            {"value": "230", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
            {"value": "55", "measurand": "SoC", "unit": "Percent", "location": "EV"}]}]},
    "BootNotification": {"chargePointVendor": "Bollore", "chargePointModel": "AL-1", "firmwareVersion": "4.2"},
    "StartTransaction": {"connectorId": 1, "idTag": "04A2B3C4D5", "meterStart": 1200,
                         "timestamp": "2026-01-01T08:00:00Z"},
}
# OCPP 2.0.1: the call a charging car sends most, with the same meter values as above
PAYLOADS_201: dict[str, dict[str, Any]] = {
    "TransactionEvent": {
        "eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "MeterValuePeriodic",
        "seqNo": 4, "transactionInfo": {"transactionId": "f1c3a2", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1}, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
            {"value": 1234.5, "measurand": "Energy.Active.Import.Register"},
            {"value": 3000, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            {"value": 13.1, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
            {"value": 230, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
            {"value": 55, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}}]}]},
}


def _cases() -> list[tuple[str, str, dict[str, Any], str]]:
    """(version, action, payload, label) of every payload measured."""
    return [*(("1.6", action, payload, action) for action, payload in PAYLOADS.items()),
            *(("2.0.1", action, payload, f"{action} (2.0.1)") for action, payload in PAYLOADS_201.items())]


@dataclass(frozen=True)
class ValidatorResult:
    name: str
    action: str
    microseconds: float


def _schema(action: str, version: str = "1.6") -> dict[str, Any]:
    schema = schemas.load(version, action, "request")
    if schema is None:
        raise KeyError(f"no {version} schema for {action}")
    schema.pop("$id", None)
    return schema


def _compilers() -> dict[str, Callable[[dict[str, Any]], Callable[[Any], object]]]:
    compilers: dict[str, Callable[[dict[str, Any]], Callable[[Any], object]]] = {}
    import jsonschema_rs

    compilers["jsonschema-rs"] = lambda s: jsonschema_rs.validator_for(s, validate_formats=True).is_valid
    try:
        import fastjsonschema

        compilers["fastjsonschema"] = lambda s: fastjsonschema.compile(s)
    except ImportError:  # dev extra not installed
        pass
    try:
        import jsonschema

        def slow(s: dict[str, Any]) -> Callable[[Any], object]:
            # the draft the schema names (1.6: draft 4, 2.0.1: draft 6)
            validator = jsonschema.validators.validator_for(s)(s, format_checker=jsonschema.FormatChecker())
            check: Callable[[Any], object] = validator.is_valid
            return check

        compilers["jsonschema"] = slow
    except ImportError:
        pass
    return compilers


def _time(check: Callable[[], object], seconds: float) -> float:
    """Microseconds per call of ``check``."""
    check()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            check()
        count += 100
    return (time.perf_counter() - start) / count * 1e6


def measure(seconds_per_case: float = 0.5) -> list[ValidatorResult]:
    results = []
    for name, compile_schema in _compilers().items():
        for version, action, payload, label in _cases():
            check = compile_schema(_schema(action, version))
            results.append(ValidatorResult(name, label, _time(partial(check, payload), seconds_per_case)))
    return results


def _explaining_path(text: str, version: str) -> object:
    frame = frames.parse_frame(text, version)
    assert isinstance(frame, frames.Call)
    schemas.validate(version, frame.action, "request", frame.payload)
    return versions.decode_request(version, frame.action, frame.payload)


def measure_paths(seconds_per_case: float = 0.5) -> list[ValidatorResult]:
    """From a call's text to its typed message: parse, validate with jsonschema-rs and convert (the
    path that explains errors), against the schemas compiled into strict msgspec types (one pass)."""
    results = []
    for version, action, payload, label in _cases():
        text = frames.encode_call("m-1", action, payload)
        if compiled.decode_call(text, version) is None:
            raise RuntimeError(f"the compiled path refused a valid {label}")
        results.append(ValidatorResult("parse + jsonschema-rs + convert", label,
                                       _time(partial(_explaining_path, text, version), seconds_per_case)))
        results.append(ValidatorResult("compiled (one pass)", label,
                                       _time(partial(compiled.decode_call, text, version), seconds_per_case)))
    return results


def render(results: list[ValidatorResult], what: str = "validator") -> str:
    slowest = {r.action: max(x.microseconds for x in results if x.action == r.action) for r in results}
    lines = [f"| {what} | action | µs per payload | × faster than slowest |", "|---|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r.name} | {r.action} | {r.microseconds:.2f} | {slowest[r.action] / r.microseconds:.1f} |")
    return "\n".join(lines)
