"""``Callback``: hooks the client runs on the head's event stream.

The hook names and arguments are Ray Tune's, so existing callbacks carry over.
``iteration`` counts the steps: each batch of events the client handles is
one, bracketed by ``on_step_begin`` and ``on_step_end``. ``trials`` is the list
of every trial seen so far; each ``trial`` is a ``TrialView``.

When they fire: ``setup`` once before the experiment is submitted;
``on_trial_start`` when a trial starts and ``on_trial_restore`` when it starts
again after a failure; ``on_trial_result`` for each result; ``on_checkpoint``
and then ``on_trial_save`` when a checkpoint of the trial is persisted;
``on_trial_recover`` when a trial failed and will be retried (not when PBT
restarts it or the experiment is stopped); ``on_trial_complete`` and
``on_trial_error`` when it ends; ``on_experiment_end`` last.
"""

from __future__ import annotations

import copy
import sys
from typing import Any


class Callback:
    """Subclass and override the hooks you need; each is a no-op here."""

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        pass

    def on_step_begin(self, iteration: int, trials: list, **info) -> None:
        pass

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        pass

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        pass

    def on_trial_restore(
        self, iteration: int, trials: list, trial: Any, **info
    ) -> None:
        pass

    def on_trial_save(self, iteration: int, trials: list, trial: Any, **info) -> None:
        pass

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info
    ) -> None:
        pass

    def on_trial_complete(
        self, iteration: int, trials: list, trial: Any, **info
    ) -> None:
        pass

    def on_trial_recover(
        self, iteration: int, trials: list, trial: Any, **info
    ) -> None:
        pass

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        pass

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info
    ) -> None:
        pass

    def on_experiment_end(self, trials: list, **info) -> None:
        pass

    def get_state(self) -> dict | None:
        return None

    def set_state(self, state: dict) -> None:
        pass


def setup_arguments(tune_config: Any, run_config: Any, param_space: dict) -> dict:
    """The keyword arguments ``Callback.setup`` receives, as Ray Tune passes them.

    ``total_num_samples`` is how many trials the search makes: for a
    BasicVariantGenerator (the default; also inside a ConcurrencyLimiter)
    ``num_samples`` passes over the grid, ``points_to_evaluate`` counted; for
    another searcher ``num_samples``; ``sys.maxsize`` when it is -1.
    """
    from tune_client.search import BasicVariantGenerator, ConcurrencyLimiter

    num_samples = tune_config.num_samples
    searcher = tune_config.search_alg
    while isinstance(searcher, ConcurrencyLimiter):
        searcher = searcher.searcher
    if num_samples == -1:
        total = sys.maxsize
    elif searcher is None or isinstance(searcher, BasicVariantGenerator):
        counter = copy.deepcopy(searcher) if searcher else BasicVariantGenerator()
        counter.set_search_properties(None, None, param_space, num_samples=num_samples)
        total = counter.total_samples
    else:
        total = num_samples
    return {
        "stop": run_config.stop,
        "num_samples": num_samples,
        "time_budget_s": tune_config.time_budget_s,
        "total_num_samples": total,
    }
