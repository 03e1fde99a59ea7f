"""Which monitored variables of a 2.0.1 station mean that someone opened or forced it.

A 2.0.1 station reports its enclosure and door switches as device-model variables, through
NotifyEvent (a hard-wired notification or a monitor voltlib set), not always as a
SecurityEventNotification. :func:`tamper_of` says when such an event is the same thing as the
``TamperDetectionActivated`` security event, so both reach the tamper detector as one neutral event
(docs/security.md, "Monitoring → tamper"). Pure: names and values in, a verdict out.
"""

from __future__ import annotations

TAMPER = "TamperDetectionActivated"

# Components whose opening is a physical intrusion: the OCPP 2.0.1 standardized AccessBarrier, and
# the names vendors use for the cabinet and its doors.
PHYSICAL_COMPONENTS = frozenset({"AccessBarrier", "AccessControl", "Enclosure", "Cabinet", "Door", "ServiceDoor"})
# Variables of those components that, true, say the door or enclosure is open or forced.
PHYSICAL_VARIABLES = frozenset({"Active", "Open", "Problem", "Tamper", "Tampered", "Tripped"})
# Variables that mean tampering on any component (e.g. ChargingStation.Tamper).
TAMPER_VARIABLES = frozenset({"Tamper", "Tampered", "TamperDetected"})
TRUE_VALUES = frozenset({"true", "1", "open", "opened", "active", "on", "tampered"})


def tamper_of(component: str, variable: str, actual_value: str, *, cleared: bool) -> str | None:
    """``TamperDetectionActivated`` when the event says a door, the enclosure or a tamper switch
    went off; None otherwise (a cleared event, a closed door, any other variable)."""
    if cleared or actual_value.strip().lower() not in TRUE_VALUES:
        return None
    if variable in TAMPER_VARIABLES or (component in PHYSICAL_COMPONENTS and variable in PHYSICAL_VARIABLES):
        return TAMPER
    return None
