"""``ExperimentSpec``: what the client sends the head to run an experiment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tune_client.config import RunConfig, TuneConfig


@dataclass
class ExperimentSpec:
    """An experiment as submitted: the head pickles it into the experiment folder.

    Callbacks stay in the client and are not part of it.
    """

    name: str
    trainable_name: str
    trainable_object_id: str
    object_ids: list[str]
    resources: dict[str, float]
    param_space: dict[str, Any]
    tune_config: TuneConfig = field(default_factory=TuneConfig)
    run_config: RunConfig = field(default_factory=RunConfig)
    # The client's callbacks, pickled; the head keeps them without loading them,
    # so Tuner.restore can hand them back.
    callbacks_pickle: bytes = b""
    # A zip of tune.init(working_dir=...) in the object store, or "".
    working_dir_object_id: str = ""
