"""A distributed hyperparameter-tuning client with Ray Tune's API.

``import tune_client as tune`` gives the names a Ray Tune script uses:
search spaces (``tune.uniform``...), ``Tuner`` and its configs,
``with_parameters``, ``report``, ``Checkpoint``, ``ResultGrid`` and callbacks.
"""

from tune_client.callback import Callback
from tune_client.checkpoint import Checkpoint
from tune_client.cluster import init, shutdown
from tune_client.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from tune_client.errors import TuneError
from tune_client.result_grid import Result, ResultGrid
from tune_client.search.sample import (
    choice,
    grid_search,
    lograndint,
    loguniform,
    qlograndint,
    qloguniform,
    qrandint,
    qrandn,
    quniform,
    randint,
    randn,
    sample_from,
    uniform,
)
from tune_client.session import get_checkpoint, get_context, report
from tune_client.trainable import with_parameters, with_resources
from tune_client.tuner import Tuner

__all__ = [
    "Callback",
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "Result",
    "ResultGrid",
    "RunConfig",
    "TuneConfig",
    "TuneError",
    "Tuner",
    "choice",
    "get_checkpoint",
    "get_context",
    "grid_search",
    "init",
    "lograndint",
    "loguniform",
    "qlograndint",
    "qloguniform",
    "qrandint",
    "qrandn",
    "quniform",
    "randint",
    "randn",
    "report",
    "sample_from",
    "shutdown",
    "uniform",
    "with_parameters",
    "with_resources",
]
