"""OCPP CallError codes, and who is to blame for an error.

OCPP 1.6 spells one code ``OccurenceConstraintViolation`` (sic); 2.0.1 fixed it to
``OccurrenceConstraintViolation``. 1.6's ``FormationViolation`` is ``FormatViolation`` in 2.0.1.
We keep a neutral name internally and spell it per version on the wire.
"""

from __future__ import annotations

import enum
from typing import Literal

Fault = Literal["peer", "ours"]


class ErrorCode(enum.Enum):
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"
    # OCPP 2.0.1 only.
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"

    def wire(self, version: str) -> str:
        """The code as spelt on the wire by ``version`` ("1.6" or "2.0.1")."""
        if self is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION and version == "1.6":
            return "OccurenceConstraintViolation"
        if self is ErrorCode.FORMATION_VIOLATION and version != "1.6":
            return "FormatViolation"
        return self.value

    @classmethod
    def from_wire(cls, text: str) -> ErrorCode | None:
        if text == "OccurenceConstraintViolation":
            return cls.OCCURRENCE_CONSTRAINT_VIOLATION
        if text == "FormatViolation":
            return cls.FORMATION_VIOLATION
        try:
            return cls(text)
        except ValueError:
            return None


class OcppError(Exception):
    """A failure that must be answered with a CallError.

    ``fault`` says whose fault it is: the peer sent something wrong, or we failed.
    """

    def __init__(
        self, code: ErrorCode, description: str, *, fault: Fault = "peer", details: dict[str, object] | None = None
    ) -> None:
        super().__init__(f"{code.value}: {description}")
        self.code = code
        self.description = description[:255]
        self.fault: Fault = fault
        self.details: dict[str, object] = details or {}
