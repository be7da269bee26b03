"""Logger callbacks that send trial results to tracking services.

``MLflowLoggerCallback`` is looked up on first use, not at import, because
mlflow is an optional extra and takes a second or two to import; a script
that never asks for it pays nothing, and one without mlflow installed gets
the install hint only when it asks.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {"MLflowLoggerCallback": "tune_client.logger.mlflow"}


def __getattr__(name: str) -> Any:
    """Import the extra's module on first access; its ImportError names the fix."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
