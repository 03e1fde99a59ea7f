"""Connector status lifecycle of OCPP 1.6 (section 4.9), written as a transition table.

A pair missing from the table *is* the anomaly: the charge point is the source of truth, so we
record the new status anyway, but flag the jump for the security detectors.
"""

from __future__ import annotations

from typing import Final

STATUSES: Final = (
    "Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV",
    "Finishing", "Reserved", "Unavailable", "Faulted",
)

_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "Available": frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Reserved", "Unavailable",
                            "Faulted"}),
    "Preparing": frozenset({"Available", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted"}),
    "Charging": frozenset({"Available", "SuspendedEV", "SuspendedEVSE", "Finishing", "Unavailable", "Faulted"}),
    "SuspendedEV": frozenset({"Available", "Charging", "SuspendedEVSE", "Finishing", "Unavailable", "Faulted"}),
    "SuspendedEVSE": frozenset({"Available", "Charging", "SuspendedEV", "Finishing", "Unavailable", "Faulted"}),
    "Finishing": frozenset({"Available", "Preparing", "Unavailable", "Faulted"}),
    "Reserved": frozenset({"Available", "Preparing", "Unavailable", "Faulted"}),
    "Unavailable": frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Faulted"}),
    "Faulted": frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                          "Reserved", "Unavailable"}),
}

# Connector 0 stands for the whole charge point and only has these states.
_CHARGE_POINT_STATUSES: Final = frozenset({"Available", "Unavailable", "Faulted"})


def is_expected(connector_id: int, previous: str | None, new: str) -> bool:
    """Whether ``previous -> new`` is a transition the standard allows for this connector."""
    if connector_id == 0:
        return new in _CHARGE_POINT_STATUSES
    if previous is None or previous == new:
        return True
    return new in _ALLOWED.get(previous, frozenset())


# OCPP 2.0.1 (part 2, B/G, ConnectorStatusEnumType): five states of a plug of an EVSE; what a
# plug in use or out of service cannot turn into directly (a reservation of an occupied plug).
STATUSES_V201: Final = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
_ALLOWED_V201: Final[dict[str, frozenset[str]]] = {
    "Available": frozenset({"Occupied", "Reserved", "Unavailable", "Faulted"}),
    "Occupied": frozenset({"Available", "Unavailable", "Faulted"}),
    "Reserved": frozenset({"Available", "Occupied", "Unavailable", "Faulted"}),
    "Unavailable": frozenset({"Available", "Occupied", "Faulted"}),
    "Faulted": frozenset({"Available", "Occupied", "Reserved", "Unavailable"}),
}


def is_expected_v201(evse_id: int, previous: str | None, new: str) -> bool:
    """Whether ``previous -> new`` is a transition OCPP 2.0.1 allows for a plug of ``evse_id``. A
    previous state of 1.6's vocabulary (the charge point spoke 1.6 before) is not held against it."""
    if previous is None or previous == new or previous not in _ALLOWED_V201:
        return True
    return new in _ALLOWED_V201[previous]
