"""Simulated OCPP charge points (1.6J and 2.0.1), for tests, the demo and the city simulator."""

from voltlib.sim.chargepoint import (
    CallFailed,
    Car,
    Connector,
    NotConnected,
    SimError,
    SimOptions,
    SimulatedChargePoint,
    Transaction,
)

__all__ = ["CallFailed", "Car", "Connector", "NotConnected", "SimError", "SimOptions", "SimulatedChargePoint",
           "Transaction"]
