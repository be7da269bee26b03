"""A distributed hyperparameter-tuning client with Ray Tune's API.

``import tune_client as tune`` gives the names a Ray Tune script uses:
search spaces (``tune.uniform``...), ``Tuner`` and its configs,
``with_parameters``, ``report``, ``Checkpoint``, ``ResultGrid`` and callbacks.

Names are imported on first use, so a trial process that only needs
``report`` does not pay for gRPC and pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Callback": "tune_client.callback",
    "Checkpoint": "tune_client.checkpoint",
    "init": "tune_client.cluster",
    "shutdown": "tune_client.cluster",
    "CheckpointConfig": "tune_client.config",
    "FailureConfig": "tune_client.config",
    "RunConfig": "tune_client.config",
    "TuneConfig": "tune_client.config",
    "TuneError": "tune_client.errors",
    "Result": "tune_client.result_grid",
    "ResultGrid": "tune_client.result_grid",
    "get_checkpoint": "tune_client.session",
    "get_context": "tune_client.session",
    "report": "tune_client.session",
    "Stopper": "tune_client.stopper",
    "with_parameters": "tune_client.trainable",
    "with_resources": "tune_client.trainable",
    "Tuner": "tune_client.tuner",
}
_SEARCH_SPACE = (
    "choice",
    "grid_search",
    "lograndint",
    "loguniform",
    "qlograndint",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "sample_from",
    "uniform",
)
_EXPORTS.update({name: "tune_client.search.sample" for name in _SEARCH_SPACE})

__all__ = sorted(_EXPORTS)


_SUBPACKAGES = ("schedulers", "search", "logger", "stopper")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tune_client.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tune_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
