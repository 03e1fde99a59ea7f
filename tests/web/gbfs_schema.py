"""Validation of GBFS files against the official v3.0 schemas in ../shared (tests only)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

ROOT = Path(__file__).resolve().parents[2]


def _shared() -> Path:
    """``../shared`` beside the checkout; a git worktree under wt/ finds it one level further up."""
    for parent in ROOT.parents:
        if (parent / "shared" / "gbfs-json-schema").is_dir():
            return parent / "shared"
    raise FileNotFoundError("../shared/gbfs-json-schema is missing (see ../shared/README.md)")


SCHEMAS = _shared() / "gbfs-json-schema" / "v3.0"


@cache
def validator(feed: str) -> Draft7Validator:
    schema = json.loads((SCHEMAS / f"{feed}.json").read_text())
    return Draft7Validator(schema, format_checker=FormatChecker())


def errors(feed: str, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(feed).iter_errors(document)]
