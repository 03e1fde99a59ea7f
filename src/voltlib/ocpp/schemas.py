"""Validation against the official OCA JSON schemas, compiled once with jsonschema-rs.

The schemas are read from the ``ocpp`` package, which ships them unmodified. jsonschema-rs was
picked by measurement (see docs/benchmarks.md); its error kinds map onto OCPP CallError codes.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any, Literal

import jsonschema_rs

from voltlib.ocpp.errors import ErrorCode, OcppError

Direction = Literal["request", "response"]

_SCHEMA_PACKAGES = {"1.6": "ocpp.v16", "2.0.1": "ocpp.v201"}

_KIND_TO_CODE: dict[str, ErrorCode] = {
    "Required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "MinItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "MaxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "Type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "Format": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "AdditionalProperties": ErrorCode.FORMATION_VIOLATION,
}


def _schema_name(action: str, direction: Direction, version: str) -> str:
    if version == "1.6":
        return f"{action}Response.json" if direction == "response" else f"{action}.json"
    return f"{action}{'Response' if direction == 'response' else 'Request'}.json"


def load(version: str, action: str, direction: Direction) -> dict[str, Any] | None:
    """The official schema of ``action``'s request or response in ``version``, if there is one."""
    root = importlib.resources.files(_SCHEMA_PACKAGES[version]).joinpath("schemas")
    resource = root.joinpath(_schema_name(action, direction, version))
    if not resource.is_file():
        return None
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator(version: str, action: str, direction: Direction) -> jsonschema_rs.Validator | None:
    schema = load(version, action, direction)
    if schema is None:
        return None
    schema.pop("$id", None)
    return jsonschema_rs.validator_for(schema, validate_formats=True)


@functools.cache
def known_actions(version: str) -> frozenset[str]:
    """Every action that has a request schema in ``version``."""
    root = importlib.resources.files(_SCHEMA_PACKAGES[version]).joinpath("schemas")
    names = [r.name for r in root.iterdir() if r.name.endswith(".json")]
    if version == "1.6":
        return frozenset(n[:-5] for n in names if not n.endswith("Response.json"))
    return frozenset(n[: -len("Request.json")] for n in names if n.endswith("Request.json"))


def validate(version: str, action: str, direction: Direction, payload: Any) -> None:
    """Raise :class:`OcppError` with the matching CallError code if ``payload`` breaks its schema."""
    validator = _validator(version, action, direction)
    if validator is None:
        raise OcppError(ErrorCode.NOT_IMPLEMENTED, f"unknown action {action!r}")
    if validator.is_valid(payload):
        return
    error = next(iter(validator.iter_errors(payload)))
    kind = type(error.kind).__name__
    code = _KIND_TO_CODE.get(kind, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION)
    where = "/".join(str(p) for p in error.instance_path) or "payload"
    raise OcppError(code, f"{where}: {error.message}", details={"path": where, "kind": kind})
