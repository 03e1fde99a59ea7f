"""Validation of GBFS files against the official v3.0 schemas vendored in tests/vendor (tests only)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

SCHEMAS = Path(__file__).resolve().parents[1] / "vendor" / "gbfs-json-schema" / "v3.0"


@cache
def validator(feed: str) -> Draft7Validator:
    schema = json.loads((SCHEMAS / f"{feed}.json").read_text())
    return Draft7Validator(schema, format_checker=FormatChecker())


def errors(feed: str, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(feed).iter_errors(document)]
