"""The official OCPP 1.6 request schemas compiled into strict msgspec types: one C pass parses,
validates and converts a charge point's call.

Why: parsing a frame to Python objects, validating them with jsonschema-rs, then converting them to
the typed message took three passes and ~15 µs for a MeterValues with nine samples, the largest
share of the gateway's per-call work; the compiled type does it in ~4 µs (docs/benchmarks.md).

Each hand-written message class of :mod:`voltlib.ocpp.v16.messages` gets a strict subclass whose
fields carry what its schema says: enums as ``Literal``, ``maxLength``, ``minItems``, RFC 3339
date-times with an offset, ``required``, no unknown properties and no ``null``. The subclass keeps
the class's name, wire names and defaults, so handlers see the same message; the class's storage
checks (no NUL, date-times that fit in UTC) are made once per frame and per date-time instead.

The schema stays the authority. A keyword this compiler cannot express makes it refuse the schema
(so the action keeps the slow path) rather than accept more than the schema does; a payload the
strict type refuses goes to the slow path, where jsonschema-rs says exactly what is wrong and picks
the CallError code. tests/unit/test_compiled.py checks, on every request schema and a corpus of
mutated payloads, that the strict type never accepts what jsonschema-rs refuses.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import sys
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from voltlib.ocpp.v16 import messages as v16

# Keywords that constrain nothing here (documentation, and "additionalProperties" on strings,
# a quirk of the 1.6 schemas), and the ones this compiler turns into types.
_IGNORED = frozenset({"$schema", "$id", "id", "title", "description", "javaType", "definitions"})
_COMPILED = frozenset({"type", "properties", "required", "additionalProperties", "items", "minItems",
                       "enum", "maxLength", "format", "$ref"})

# RFC 3339 as JSON Schema's "date-time" reads it. msgspec's own datetime parser also takes a space
# for the "T" and offsets without a colon, which the schema refuses: the text is matched first,
# then parsed by msgspec (the same parser, so the same value, as the slow path).
_RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_DATE_TIME_TEXT = Annotated[str, msgspec.Meta(pattern=_RFC3339)]
_date_time_decoder = msgspec.json.Decoder(Annotated[datetime, msgspec.Meta(tz=True)])

_NUL = "\\u0000"
_Frame = tuple[Literal[2], Annotated[str, msgspec.Meta(min_length=1, max_length=36)], str, msgspec.Raw]
_frame_decoder = msgspec.json.Decoder(_Frame)


class SchemaNotCompiled(Exception):
    """The schema uses something this compiler does not turn into a type, or disagrees with the class."""


def decode_call(text: str) -> tuple[str, str, v16.Message] | None:
    """``(message_id, action, request)`` for a schema-valid 1.6 call of a charge point, else None:
    the frame is something else, or invalid, and the slow path will say what and why."""
    if _NUL in text:  # the one way JSON carries a NUL: the slow path's checks refuse it
        return None
    try:
        _, message_id, action, raw = _frame_decoder.decode(text)
        decoder = decoders().get(action)
        if decoder is None:
            return None
        return message_id, action, decoder.decode(raw)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    except (RecursionError, UnicodeEncodeError):  # nested beyond the stack, or a lone surrogate: never a
        return None  # valid call; the slow path says which (its depth limit, or not Unicode text)


@functools.cache
def decoders() -> dict[str, msgspec.json.Decoder[v16.Message]]:
    """One decoder per request action whose schema compiles (all of 1.6's, checked by the tests)."""
    found: dict[str, msgspec.json.Decoder[v16.Message]] = {}
    for action, cls in v16.REQUESTS.items():
        try:
            found[action] = msgspec.json.Decoder(strict_type(cls, _schema(action)))
        except SchemaNotCompiled:
            continue
    return found


def _schema(action: str) -> dict[str, Any]:
    resource = importlib.resources.files("ocpp.v16").joinpath("schemas").joinpath(f"{action}.json")
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


def strict_type(cls: type[msgspec.Struct], schema: dict[str, Any],
                definitions: dict[str, Any] | None = None) -> type[msgspec.Struct]:
    """A subclass of ``cls`` whose fields carry the constraints of the object ``schema``."""
    definitions = schema.get("definitions", {}) if definitions is None else definitions
    _check_keywords(schema)
    if schema.get("type") != "object":
        raise SchemaNotCompiled(f"{cls.__name__}: not an object schema")
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    date_times: list[str] = []
    for field in msgspec.structs.fields(cls):
        prop = properties.get(field.encode_name)
        if prop is None:
            raise SchemaNotCompiled(f"{cls.__name__}.{field.name}: not in the schema")
        annotation = _strict(field.type, _resolve(prop, definitions), definitions, f"{cls.__name__}.{field.name}")
        if annotation is _DATE_TIME_TEXT:
            date_times.append(field.name)
        if field.encode_name in required or field.required:
            fields.append((field.name, annotation))
        else:  # the default may be None while the type refuses null: msgspec does not check defaults
            fields.append((field.name, annotation, field.default))
    config = cls.__struct_config__
    return msgspec.defstruct(cls.__name__, fields, bases=(cls,), kw_only=True, omit_defaults=config.omit_defaults,
                             forbid_unknown_fields=schema.get("additionalProperties") is False,
                             namespace=_post_init(tuple(date_times)), module=__name__)


def _post_init(date_times: tuple[str, ...]) -> dict[str, Any]:
    """Parse the date-times (matched as text) and check that they can be stored, in place of the
    class's own checks (``_check_storable``): those look for NULs in every string, which
    ``decode_call`` has ruled out for the whole frame at once, and were a third of a decode."""
    if not date_times:
        return {"__post_init__": _nothing_to_check}

    def __post_init__(self: msgspec.Struct) -> None:
        for name in date_times:
            text = getattr(self, name)
            if text is not None:  # an absent optional field keeps its default
                value = _date_time_decoder.decode(f'"{text}"')  # the pattern admits no quote
                v16.check_utc_range(name, value)
                setattr(self, name, value)

    return {"__post_init__": __post_init__}


def _nothing_to_check(self: msgspec.Struct) -> None:
    """No date-time to parse, and no NUL: ``decode_call`` ruled them out."""


def _resolve(prop: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if ref is None:
        return prop
    prefix = "#/definitions/"
    if not ref.startswith(prefix) or ref[len(prefix):] not in definitions or len(prop) > 1:
        raise SchemaNotCompiled(f"unsupported $ref {ref!r}")
    resolved: dict[str, Any] = definitions[ref[len(prefix):]]
    return resolved


def _check_keywords(schema: dict[str, Any]) -> None:
    unknown = set(schema) - _IGNORED - _COMPILED
    if unknown:
        raise SchemaNotCompiled(f"keywords {sorted(unknown)} are not compiled")


def _strict(base: Any, prop: dict[str, Any], definitions: dict[str, Any], where: str) -> Any:
    _check_keywords(prop)
    base = _without_none(base)
    kind = prop.get("type")
    if kind == "object":
        if not (isinstance(base, type) and issubclass(base, msgspec.Struct)):
            raise SchemaNotCompiled(f"{where}: an object must be a Struct")
        return strict_type(base, prop, definitions)
    if kind == "array":
        if typing.get_origin(base) is not list:
            raise SchemaNotCompiled(f"{where}: an array must be a list")
        item = _strict(typing.get_args(base)[0], _resolve(prop["items"], definitions), definitions, f"{where}[]")
        if item is _DATE_TIME_TEXT:
            raise SchemaNotCompiled(f"{where}: arrays of date-times are not compiled")
        items: Any = list[item]  # type: ignore[valid-type]  # built at run time from the schema
        return Annotated[items, msgspec.Meta(min_length=prop["minItems"])] if "minItems" in prop else items
    if kind == "string":
        return _string(base, prop, where)
    if kind in ("integer", "number", "boolean") and not ({"enum", "maxLength", "format", "minItems"} & set(prop)):
        expected = {"integer": int, "number": float, "boolean": bool}[kind]
        if _plain(base) is not expected:
            raise SchemaNotCompiled(f"{where}: {kind} must be {expected.__name__}")
        return base  # the class's own bounds (e.g. 32-bit) are kept: stricter than the schema, never looser
    raise SchemaNotCompiled(f"{where}: cannot compile {prop!r}")


def _string(base: Any, prop: dict[str, Any], where: str) -> Any:
    if prop.get("format") == "date-time":
        if _plain(base) is not datetime or {"enum", "maxLength"} & set(prop):
            raise SchemaNotCompiled(f"{where}: a date-time must be a datetime")
        return _DATE_TIME_TEXT
    if "format" in prop or _plain(base) is not str:
        raise SchemaNotCompiled(f"{where}: cannot compile string {prop!r}")
    if "enum" in prop:
        values = prop["enum"]
        if not values or not all(isinstance(v, str) for v in values) or "maxLength" in prop:
            raise SchemaNotCompiled(f"{where}: only an enum of strings is compiled")
        # interned like the classes' defaults, so that an enum value equal to its default is left out
        # of the encoding on both paths (msgspec's omit_defaults) and a call's fingerprint
        # (voltlib.ocpp.session) does not depend on the path it took
        return Literal[tuple(sys.intern(v) for v in values)]
    if "maxLength" in prop:
        return Annotated[str, msgspec.Meta(max_length=prop["maxLength"])]
    return str


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _plain(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation
