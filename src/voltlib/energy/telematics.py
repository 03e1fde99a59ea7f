"""Vehicle telematics: a car's own state of charge, pushed over HTTP or MQTT.

Payload (JSON, at most ``MAX_BYTES``): ``{"soc_percent": 63.5, "at": "2026-06-01T08:00:00Z"}``
(``at`` optional: the time of receipt; other fields such as ``odometer_km`` are accepted and ignored).
MQTT topic: ``voltlib/<city>/vehicles/<vehicle id>/telematics`` on the broker of
``telematics_mqtt_url`` (Mosquitto on 127.0.0.1:1883 here), QoS 1. A reading older than the one
stored never overwrites it, so redelivered or reordered messages are harmless.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import aiomqtt
import msgspec

from voltlib.energy.estimation import record_reading
from voltlib.ocpp.frames import MAX_DEPTH, too_deep

if TYPE_CHECKING:
    from voltlib.gateway.context import Services

log = logging.getLogger(__name__)
MAX_BYTES = 4096
TOPIC = "voltlib/+/vehicles/+/telematics"
RECONNECT_MAX_S = 30.0


class Telematics(msgspec.Struct, kw_only=True):
    soc_percent: Annotated[float, msgspec.Meta(ge=0, le=100)]
    at: datetime | None = None


class TelematicsError(ValueError):
    """The sender's fault: the message says what was wrong."""


def parse(raw: bytes) -> Telematics:
    if len(raw) > MAX_BYTES:
        raise TelematicsError(f"telematics message over {MAX_BYTES} bytes")
    if too_deep(raw.decode("utf-8", "replace"), MAX_DEPTH):  # else a RecursionError out of the decoder
        raise TelematicsError(f"arrays and objects nest deeper than {MAX_DEPTH} levels")
    try:
        reading = msgspec.json.decode(raw, type=Telematics)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise TelematicsError(str(exc)) from None
    if reading.at is not None and reading.at.tzinfo is None:
        raise TelematicsError("at needs a timezone (e.g. 2026-06-01T08:00:00Z)")
    return reading


async def ingest(services: Services, car_id: str, reading: Telematics) -> bool:
    """Store one reading (source ``telematics``); False: no such vehicle."""
    at = reading.at or services.clock.now()
    known: bool = await services.store.write(partial(record_reading, car_id=car_id, soc_percent=reading.soc_percent,
                                                     source="telematics", at=at.astimezone(UTC)))
    return known


def vehicle_of(topic: str) -> str | None:
    parts = topic.split("/")
    return parts[3] if len(parts) == 5 and parts[0] == "voltlib" and parts[2] == "vehicles" else None


class MqttTelematics:
    """Subscribes to every city's telematics topic; reconnects with a capped back-off."""

    def __init__(self, services: Services, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"telematics_mqtt_url {url!r}: mqtt://host[:port]")
        self.services, self.host, self.port = services, parts.hostname, parts.port or 1883
        self.received = self.refused = 0
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=None) as client:
                    await client.subscribe(TOPIC, qos=1)
                    self.subscribed.set()
                    delay = 1.0
                    async for message in client.messages:
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes) else str(payload).encode()
                        await self.handle(str(message.topic), raw)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                log.warning("telematics broker %s:%s: %s; retrying in %.0f s", self.host, self.port, exc, delay)
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX_S, delay * 2)

    async def handle(self, topic: str, payload: bytes) -> None:
        car_id = vehicle_of(topic)
        try:
            if car_id is None:
                raise TelematicsError(f"topic {topic!r} is not {TOPIC}")
            if not await ingest(self.services, car_id, parse(payload)):
                raise TelematicsError(f"no vehicle {car_id}")
            self.received += 1
        except TelematicsError as exc:
            self.refused += 1
            log.warning("telematics message on %s refused: %s", topic[:200], exc)
