"""Compact storage of OCPP sampled values.

A MeterValue's samples are packed into one MessagePack blob of tuples; the enumerated fields
(context, format, measurand, phase, location, unit) are stored as small integers when they are
standard values, and as text otherwise, so nothing the charge point said is lost.
"""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from voltlib.ocpp.v16.messages import SampledValue

CONTEXTS: Final = ("Sample.Periodic", "Interruption.Begin", "Interruption.End", "Sample.Clock", "Transaction.Begin",
                   "Transaction.End", "Trigger", "Other")
FORMATS: Final = ("Raw", "SignedData")
MEASURANDS: Final = (
    "Energy.Active.Import.Register", "Energy.Active.Export.Register", "Energy.Reactive.Import.Register",
    "Energy.Reactive.Export.Register", "Energy.Active.Import.Interval", "Energy.Active.Export.Interval",
    "Energy.Reactive.Import.Interval", "Energy.Reactive.Export.Interval", "Power.Active.Import",
    "Power.Active.Export", "Power.Offered", "Power.Reactive.Import", "Power.Reactive.Export", "Power.Factor",
    "Current.Import", "Current.Export", "Current.Offered", "Voltage", "Frequency", "Temperature", "SoC", "RPM",
)
PHASES: Final = (None, "L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
LOCATIONS: Final = ("Outlet", "Cable", "EV", "Inlet", "Body")
UNITS: Final = ("Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar", "A", "V", "K", "Celcius",
                "Celsius", "Fahrenheit", "Percent")

_TABLES: Final = (CONTEXTS, FORMATS, MEASURANDS, PHASES, LOCATIONS, UNITS)
_INDEX: Final = tuple({v: i for i, v in enumerate(t)} for t in _TABLES)
_NAMES: Final = ("context", "format", "measurand", "phase", "location", "unit")

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


_CONTEXT, _FORMAT, _MEASURAND, _PHASE, _LOCATION, _UNIT = _INDEX


def pack(samples: list[SampledValue]) -> bytes:
    # spelled out rather than looped over _NAMES: this runs for every MeterValues a charge point sends
    return _encoder.encode([
        (s.value, _CONTEXT.get(s.context, s.context), _FORMAT.get(s.format, s.format),
         _MEASURAND.get(s.measurand, s.measurand), _PHASE.get(s.phase, s.phase),
         _LOCATION.get(s.location, s.location), _UNIT.get(s.unit, s.unit))
        for s in samples])


def unpack(blob: bytes) -> list[dict[str, Any]]:
    """Back to wire-shaped sampled values (camelCase keys, phase omitted when absent)."""
    out: list[dict[str, Any]] = []
    for row in _decoder.decode(blob):
        sample: dict[str, Any] = {"value": row[0]}
        for i, name in enumerate(_NAMES):
            code = row[i + 1]
            value = _TABLES[i][code] if isinstance(code, int) else code
            if value is not None:
                sample[name] = value
        out.append(sample)
    return out


def merge(stored: bytes, more: bytes) -> bytes:
    """Two packed readings of one instant (:func:`pack`) as one: the stored samples, then those of
    ``more`` it does not have yet (an OCPP 2.0.1 station may report an instant in two messages,
    e.g. its Transaction.Begin register and a state of charge)."""
    kept = _decoder.decode(stored)
    new = [row for row in _decoder.decode(more) if row not in kept]
    return stored if not new else _encoder.encode(kept + new)


def find(samples: list[SampledValue], measurand: str, phase: str | None = None) -> float | None:
    """The numeric value of one measurand (e.g. SoC), or None when absent or not a number."""
    for s in samples:
        if s.measurand == measurand and (phase is None or s.phase == phase):
            try:
                return float(s.value)
            except ValueError:
                return None
    return None


def find_packed(blob: bytes, measurand: str) -> float | None:
    """``find`` on a stored blob (:func:`pack`), without rebuilding the samples."""
    code = _MEASURAND.get(measurand, measurand)
    for row in _decoder.decode(blob):
        if row[3] == code:
            try:
                return float(row[0])
            except ValueError:
                return None
    return None


REGISTER: Final = "Energy.Active.Import.Register"  # the measurand a sample without one is (OCPP 1.6 §7.31)


def import_register_wh(samples: list[dict[str, Any]]) -> float | None:
    """The energy import register of unpacked samples (:func:`unpack`) in Wh, the whole meter's
    (a sample without a phase) before a phase's; None when there is none or it is not a number."""
    found = [s for s in samples if s.get("measurand", REGISTER) == REGISTER]
    found.sort(key=lambda s: "phase" in s)
    for sample in found[:1]:
        try:
            value = float(sample["value"])
        except (KeyError, ValueError):
            return None
        if not math.isfinite(value):
            return None
        return value * 1000.0 if sample.get("unit") == "kWh" else value
    return None
