"""The charge-point gateway: the thin asyncio layer around the sans-I/O OCPP core."""
