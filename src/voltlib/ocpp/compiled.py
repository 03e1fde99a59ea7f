"""The official OCPP request schemas (1.6 and 2.0.1) compiled into strict msgspec types: one C pass
parses, validates and converts a charge point's call.

Why: parsing a frame to Python objects, validating them with jsonschema-rs, then converting them to
the typed message took three passes and ~15 µs for a MeterValues with nine samples, the largest
share of the gateway's per-call work; the compiled type does it in ~4 µs (docs/benchmarks.md).

Each hand-written message class of :mod:`voltlib.ocpp.v16.messages` and
:mod:`voltlib.ocpp.v201.messages` gets a strict subclass whose fields carry what its schema says:
enums as ``Literal``, ``maxLength``, ``minItems``/``maxItems``, ``minimum``/``maximum``, RFC 3339
date-times with an offset, ``required``, no unknown properties and no ``null``. The subclass keeps
the class's name, wire names and defaults, so handlers see the same message; the class's storage
checks (no NUL, date-times that fit in UTC) are made once per frame and per date-time instead.

The schema stays the authority. A keyword this compiler cannot express makes it refuse the schema
(so the action keeps the slow path) rather than accept more than the schema does; a payload the
strict type refuses goes to the slow path, where jsonschema-rs says exactly what is wrong and picks
the CallError code. tests/unit/test_compiled.py checks, on every request schema of both versions and
a corpus of mutated payloads, that the strict type never accepts what jsonschema-rs refuses.
"""

from __future__ import annotations

import functools
import math
import sys
import types
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from voltlib.ocpp import schemas, versions
from voltlib.ocpp.v16 import messages as v16

# Keywords that constrain nothing here (documentation, "additionalProperties" on strings, a quirk of
# the 1.6 schemas, "default", which says what an absent property means and is the classes' default,
# and 2.0.1's "additionalItems", which constrains nothing when "items" is one schema: checked where
# met), and the ones this compiler turns into types.
_IGNORED = frozenset({"$schema", "$id", "id", "title", "description", "javaType", "definitions", "comment",
                      "default", "additionalItems"})
_COMPILED = frozenset({"type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
                       "enum", "maxLength", "format", "$ref", "minimum", "maximum"})

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


def decode_call(text: str, version: str = "1.6") -> tuple[str, str, versions.Request] | None:
    """``(message_id, action, request)`` for a schema-valid call of a charge point speaking ``version``,
    else None: the frame is something else, or invalid, and the slow path will say what and why."""
    if _NUL in text:  # the one way JSON carries a NUL: the slow path's checks refuse it
        return None
    try:
        _, message_id, action, raw = _frame_decoder.decode(text)
        decoder = decoders(version).get(action)
        if decoder is None:
            return None
        return message_id, action, decoder.decode(raw)
    except msgspec.DecodeError:  # ValidationError is a DecodeError
        return None
    except (RecursionError, UnicodeEncodeError):  # nested beyond the stack, or a lone surrogate: never a
        return None  # valid call; the slow path says which (its depth limit, or not Unicode text)


@functools.cache
def decoders(version: str = "1.6") -> dict[str, msgspec.json.Decoder[versions.Request]]:
    """One decoder per request action of ``version`` whose schema compiles (all of them, checked by
    the tests)."""
    found: dict[str, msgspec.json.Decoder[versions.Request]] = {}
    for action, cls in versions.requests(version).items():
        try:
            found[action] = msgspec.json.Decoder(strict_type(cls, _schema(action, version)))
        except SchemaNotCompiled:
            continue
    return found


def _schema(action: str, version: str = "1.6") -> dict[str, Any]:
    schema = schemas.load(version, action, "request")
    if schema is None:
        raise SchemaNotCompiled(f"{version} {action}: no request schema")
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
    text_defaults: list[tuple[str, str]] = []
    for field in msgspec.structs.fields(cls):
        prop = properties.get(field.encode_name)
        if prop is None:
            raise SchemaNotCompiled(f"{cls.__name__}.{field.name}: not in the schema")
        annotation = _strict(field.type, _resolve(prop, definitions), definitions, f"{cls.__name__}.{field.name}")
        if annotation is _DATE_TIME_TEXT:
            date_times.append(field.name)
        default = field.default
        if isinstance(default, str) and getattr(cls, "SAME_DEFAULTS", False):
            if typing.get_origin(annotation) is Literal:  # the decoded member is this very object
                default = sys.intern(default)
            else:
                text_defaults.append((field.name, default))
        # the wire name is carried over explicitly: one given by hand (2.0.1's responderURL) is not
        # what the inherited rename rule would make of the field's name
        if field.encode_name in required or field.required:
            fields.append((field.name, annotation, msgspec.field(name=field.encode_name)))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, annotation, msgspec.field(default_factory=field.default_factory,
                                                                 name=field.encode_name)))
        else:  # the default may be None while the type refuses null: msgspec does not check defaults
            fields.append((field.name, annotation, msgspec.field(default=default, name=field.encode_name)))
    config = cls.__struct_config__
    return msgspec.defstruct(cls.__name__, fields, bases=(cls,), kw_only=True, omit_defaults=config.omit_defaults,
                             forbid_unknown_fields=schema.get("additionalProperties") is False,
                             namespace=_post_init(tuple(date_times), tuple(text_defaults)), module=__name__)


def _post_init(date_times: tuple[str, ...], text_defaults: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """Parse the date-times (matched as text) and check that they can be stored, in place of the
    class's own checks (``_check_storable``): those look for NULs in every string, which
    ``decode_call`` has ruled out for the whole frame at once, and were a third of a decode.

    In a class that asks for it (``SAME_DEFAULTS``: the 2.0.1 ones), a value equal to its field's
    default is left out of the encoding, as the class's own check does on the slow path
    (:func:`voltlib.ocpp.v201.common.same_defaults`): msgspec leaves a default out by identity, and
    a call's fingerprint must not depend on the path it took. An enumeration's default is its
    interned member (``strict_type``), which is what the decoder returns; a free text equal to its
    default (the unit "Wh") is replaced here by the default itself."""
    if not date_times and not text_defaults:
        return {"__post_init__": _nothing_to_check}

    def __post_init__(self: msgspec.Struct) -> None:
        for name, default in text_defaults:
            if getattr(self, name) == default:
                setattr(self, name, default)
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
        return _array(base, prop, definitions, where)
    if kind == "string":
        return _string(base, prop, where)
    if kind in ("integer", "number", "boolean") and not ({"enum", "maxLength", "format", "minItems", "maxItems"}
                                                         & set(prop)):
        expected = {"integer": int, "number": float, "boolean": bool}[kind]
        if _plain(base) is not expected or (kind == "boolean" and {"minimum", "maximum"} & set(prop)):
            raise SchemaNotCompiled(f"{where}: {kind} must be {expected.__name__}")
        return _bounded(base, prop, where)
    if kind is None and set(prop) <= _IGNORED and base is Any:  # any JSON value (2.0.1 DataTransfer's data)
        return Any
    raise SchemaNotCompiled(f"{where}: cannot compile {prop!r}")


def _array(base: Any, prop: dict[str, Any], definitions: dict[str, Any], where: str) -> Any:
    if typing.get_origin(base) is not list:
        raise SchemaNotCompiled(f"{where}: an array must be a list")
    if not isinstance(prop.get("items"), dict):  # a list of schemas (a tuple) is where additionalItems counts
        raise SchemaNotCompiled(f"{where}: only one schema for all items is compiled")
    item = _strict(typing.get_args(base)[0], _resolve(prop["items"], definitions), definitions, f"{where}[]")
    if item is _DATE_TIME_TEXT:
        raise SchemaNotCompiled(f"{where}: arrays of date-times are not compiled")
    items: Any = list[item]  # type: ignore[valid-type]  # built at run time from the schema
    lengths = {"min_length": prop.get("minItems"), "max_length": prop.get("maxItems")}
    lengths = {key: value for key, value in lengths.items() if value is not None}
    return Annotated[items, msgspec.Meta(**lengths)] if lengths else items


def _bounded(base: Any, prop: dict[str, Any], where: str) -> Any:
    """``base`` within the schema's ``minimum`` and ``maximum`` and the class's own bounds (e.g.
    32-bit): the tighter of each. msgspec takes one bound of a kind per type, so they are merged."""
    if "minimum" not in prop and "maximum" not in prop:
        return base  # the class's own bounds are kept: stricter than the schema, never looser
    plain = _plain(base)
    own = [m for m in typing.get_args(base)[1:] if isinstance(m, msgspec.Meta)]
    if any(set(_meta_bounds(m)) - {"ge", "le"} for m in own):
        raise SchemaNotCompiled(f"{where}: only inclusive bounds are merged")
    ge = [b for m in own for k, b in _meta_bounds(m).items() if k == "ge"]
    le = [b for m in own for k, b in _meta_bounds(m).items() if k == "le"]
    if "minimum" in prop:
        ge.append(math.ceil(prop["minimum"]) if plain is int else prop["minimum"])
    if "maximum" in prop:
        le.append(math.floor(prop["maximum"]) if plain is int else prop["maximum"])
    bounds = {key: value for key, value in (("ge", max(ge, default=None)), ("le", min(le, default=None)))
              if value is not None}
    return Annotated[plain, msgspec.Meta(**bounds)]


def _meta_bounds(meta: msgspec.Meta) -> dict[str, Any]:
    names = ("gt", "ge", "lt", "le", "multiple_of", "pattern", "min_length", "max_length", "tz")
    return {name: getattr(meta, name) for name in names if getattr(meta, name) is not None}


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
