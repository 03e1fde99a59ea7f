"""What a simulated charge point says on the wire: one dialect per OCPP version.

The charge point (:mod:`voltlib.sim.chargepoint`) is the hardware: it tells its dialect what
happened (a status changed, a transaction started, a sample is due, a reservation expired) and the
dialect queues that version's messages on the outbox (:mod:`voltlib.sim.link`). The other way, the
dialect reads the central system's commands, checks them against the official schemas, and turns
them into what the hardware does, with that version's answer. No I/O here: the outbox and the
answers are the dialect's whole output, so a test can feed it events and read the frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from voltlib.ocpp import schemas
from voltlib.ocpp.errors import ErrorCode, OcppError
from voltlib.sim.hardware import Connector, Reservation, Transaction
from voltlib.sim.link import FollowUp, Payload, Queued

if TYPE_CHECKING:
    from voltlib.sim.chargepoint import SimulatedChargePoint

Answer = tuple[Payload, FollowUp | None]


class Dialect:
    """The base of a version's dialect: the hooks the charge point calls, and command dispatch
    (a command ``X`` of ``COMMANDS`` is answered by the method ``_on_X``)."""

    version: ClassVar[str]
    subprotocol: ClassVar[str]
    COMMANDS: ClassVar[frozenset[str]]

    def __init__(self, cp: SimulatedChargePoint) -> None:
        self.cp = cp

    # -- the central system's commands --

    def dispatch(self, action: str, payload: Payload) -> Answer:
        """The answer to a command and what the post does after sending it. Raises
        :class:`OcppError` for a request that must be answered with a CallError."""
        if action not in self.COMMANDS:
            raise OcppError(ErrorCode.NOT_IMPLEMENTED,
                            f"{action} is not a central-system command this OCPP {self.version} post implements")
        schemas.validate(self.version, action, "request", payload)
        handler = getattr(self, f"_on_{action}", None)
        if handler is None:  # pragma: no cover - every command has a handler
            raise OcppError(ErrorCode.NOT_SUPPORTED, f"{action} is not supported")
        result: Answer = handler(payload)
        return result

    # -- what the post says of itself --

    def boot_payload(self) -> Payload:
        raise NotImplementedError

    def booted(self) -> None:
        """The central system accepted the boot."""

    def report_status(self, connector_id: int) -> None:
        """Queue the status of ``connector_id`` (0: the charge point) if this version reports it."""
        raise NotImplementedError

    def reset_reports(self) -> None:
        """After (re)connecting every status is reported again."""

    def authorize_request(self, id_tag: str) -> tuple[str, Payload]:
        raise NotImplementedError

    def authorize_info(self, result: Payload) -> Payload:
        """The answer to :meth:`authorize_request` as a 1.6 idTagInfo (status, expiryDate), the
        shape the post's local list and cache keep."""
        raise NotImplementedError

    def meter_value(self, c: Connector, context: str) -> Payload:
        raise NotImplementedError

    def transaction_started(self, c: Connector, tx: Transaction, trigger: str) -> None:
        raise NotImplementedError

    def transaction_sampled(self, c: Connector, tx: Transaction) -> None:
        raise NotImplementedError

    def transaction_stopped(self, c: Connector, tx: Transaction, reason: str, id_tag: str | None) -> None:
        raise NotImplementedError

    def reservation_ended(self, reservation: Reservation, status: str) -> None:
        """A reservation ended without being used (``status``: Expired)."""

    # -- the outbox --

    def resolved(self, item: Queued) -> Payload | None:
        """The payload to send for a queued message (None: drop it)."""
        return item.payload

    def answered(self, item: Queued, result: Payload) -> None:
        """The central system answered a queued message with ``result``."""
        if item.action == "SecurityEventNotification":
            self.cp.acknowledged.append((item.action, None))


def dialect_for(version: str) -> type[Dialect]:
    from voltlib.sim.dialect_v16 import DialectV16
    from voltlib.sim.dialect_v201 import DialectV201

    for cls in (DialectV16, DialectV201):
        if cls.version == version:
            return cls
    raise ValueError(f"no simulated OCPP {version!r}: 1.6 or 2.0.1")
