"""Detector thresholds as data: read from the ``security_thresholds`` setting (a TOML table) or
changed at run time through the API, validated against :class:`~voltlib.security.detectors.Tuning`.

Wire form: durations in seconds, lists for the tuple and set fields, plain numbers and booleans
otherwise. Every count, window and margin must be positive; an unknown name is an error, not a
silent no-op, so a typo in the configuration cannot switch a detector off unnoticed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

import msgspec

from voltlib.security.detectors import Tuning

_FIELDS = {f.name: f for f in dataclasses.fields(Tuning)}
_DEFAULTS = Tuning()
# Larger is no threshold but a typo (and 1e308 seconds is no timedelta; 2**70 no JSON integer we write).
MAX_NUMBER = 1_000_000_000


class ThresholdError(ValueError):
    """A bad threshold (the operator's or the configuration's fault); the message names it."""


def _convert(name: str, value: Any) -> Any:
    default = getattr(_DEFAULTS, name)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ThresholdError(f"{name}: true or false")
        return value
    if isinstance(default, timedelta | int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_NUMBER:
            raise ThresholdError(f"{name}: a positive number" + (" of seconds" if isinstance(default, timedelta)
                                                                  else "") + f" up to {MAX_NUMBER:,}")
        if isinstance(default, timedelta):
            return timedelta(seconds=value)
        if isinstance(default, int) and not float(value).is_integer():
            raise ThresholdError(f"{name}: a whole number")
        return type(default)(value)
    if isinstance(default, tuple | frozenset):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ThresholdError(f"{name}: a list of non-empty strings")
        return tuple(value) if isinstance(default, tuple) else frozenset(value)
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                                  and 0 < v <= MAX_NUMBER for v in value.values()):
            raise ThresholdError(f"{name}: a table of charge point → positive number")
        return {str(k): float(v) for k, v in value.items()}
    raise ThresholdError(f"{name}: not settable")


def tuning_from(overrides: Mapping[str, Any], base: Tuning = _DEFAULTS) -> Tuning:
    unknown = sorted(set(overrides) - set(_FIELDS))
    if unknown:
        raise ThresholdError(f"unknown thresholds {unknown}; known: {sorted(_FIELDS)}")
    return dataclasses.replace(base, **{name: _convert(name, value) for name, value in overrides.items()})


def as_wire(tuning: Tuning) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(tuning, name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, tuple | frozenset):
            value = sorted(value) if isinstance(value, frozenset) else list(value)
        out[name] = value
    return out


def _wire_type(name: str) -> Any:
    """The JSON type of a threshold, as :func:`as_wire` writes it and :func:`tuning_from` takes it."""
    default = getattr(_DEFAULTS, name)
    positive = msgspec.Meta(gt=0, le=MAX_NUMBER)
    if isinstance(default, bool):
        return bool
    if isinstance(default, timedelta):
        return Annotated[float, positive, msgspec.Meta(description="seconds")]
    if isinstance(default, int | float):
        return Annotated[type(default), positive]
    if isinstance(default, tuple | frozenset):
        return list[Annotated[str, msgspec.Meta(min_length=1)]]
    if isinstance(default, dict):
        return Annotated[dict[str, Annotated[float, positive]], msgspec.Meta(description="charge point → value")]
    raise TypeError(f"no wire type for threshold {name}")


# The API's models, made from Tuning's fields so a new threshold is in the OpenAPI document at once.
Thresholds = msgspec.defstruct("Thresholds", [(n, _wire_type(n)) for n in _FIELDS], kw_only=True)
ThresholdChange = msgspec.defstruct("ThresholdChange", [(n, _wire_type(n), msgspec.UNSET) for n in _FIELDS],
                                    kw_only=True, forbid_unknown_fields=True)
