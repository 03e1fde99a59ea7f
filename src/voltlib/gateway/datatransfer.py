"""DataTransfer from charge points, routed by vendorId to whoever registered for it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DataTransferAnswer:
    status: str  # Accepted | Rejected | UnknownMessageId | UnknownVendorId
    data: str | None = None


VendorHandler = Callable[[str, str | None, str | None], Awaitable[DataTransferAnswer]]
"""(charge point id, messageId, data) -> answer."""


class DataTransferRouter:
    def __init__(self) -> None:
        self._vendors: dict[str, VendorHandler] = {}

    def register(self, vendor_id: str, handler: VendorHandler) -> None:
        self._vendors[vendor_id] = handler

    async def route(self, cp_id: str, vendor_id: str, message_id: str | None, data: str | None) -> DataTransferAnswer:
        handler = self._vendors.get(vendor_id)
        if handler is None:
            return DataTransferAnswer("UnknownVendorId")
        return await handler(cp_id, message_id, data)
