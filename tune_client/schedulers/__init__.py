"""Trial schedulers: they read each result and decide whether a trial goes on.

Schedulers run on the head. ``FIFOScheduler`` lets every trial run to its end;
``ASHAScheduler`` (also named ``AsyncHyperBandScheduler``) stops trials that
fall behind at successive-halving rungs; ``MedianStoppingRule`` stops trials
whose best result trails the median of the other trials' running averages;
``PopulationBasedTraining`` restarts poor trials from good trials' checkpoints
with explored configs.
"""

from __future__ import annotations

from tune_client.schedulers.async_hyperband import (
    ASHAScheduler,
    AsyncHyperBandScheduler,
)
from tune_client.schedulers.median_stopping import MedianStoppingRule
from tune_client.schedulers.pbt import PopulationBasedTraining
from tune_client.schedulers.trial_scheduler import FIFOScheduler, TrialScheduler

__all__ = [
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "FIFOScheduler",
    "MedianStoppingRule",
    "PopulationBasedTraining",
    "TrialScheduler",
]
