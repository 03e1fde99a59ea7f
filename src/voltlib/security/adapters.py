"""Loading an operator's adapter named in the settings ("package.module:factory").

The CA and the V2G back end are pluggable: the setting names a callable that gets the settings and
returns the adapter. A name that does not resolve is a configuration error at start-up, not at the
first CSR a charge point sends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from voltlib.config import Settings


def load(spec: str, settings: Settings) -> Any:
    """The adapter ``spec``'s factory makes from ``settings``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{spec!r}: expected 'package.module:factory'")
    factory: Callable[[Settings], Any] = getattr(importlib.import_module(module_name), attribute)
    return factory(settings)
