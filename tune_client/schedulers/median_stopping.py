"""The median stopping rule (from Google Vizier), with Ray Tune's arguments.

At each result of a trial that has run at least ``grace_period`` (in units of
``time_attr``), the scheduler looks at the other trials that have reached the
same time (running, finished or stopped ones alike). For each it takes the
running average of the metric over its results with ``grace_period <= time
<= now``. If at least ``min_samples_required`` such trials exist and the
trial's best result so far is strictly worse than the median of those
averages, the trial is stopped. A NaN metric counts as the worst value.
"""

from __future__ import annotations

import statistics
from typing import Any

from tune_client.errors import TuneConfigError
from tune_client.schedulers.async_hyperband import (
    _check_number,
    _check_str,
    _require_metric_mode,
    _result_number,
    _score,
)
from tune_client.schedulers.trial_scheduler import TrialScheduler

__all__ = ["MedianStoppingRule"]


class MedianStoppingRule(TrialScheduler):
    """Stop trials whose best result trails the median of the others' averages.

    ``time_attr`` is the result key that measures progress; no trial is
    stopped or averaged before ``grace_period``; ``min_samples_required`` is
    how many other trials must have reached the same time before a trial is
    judged. ``min_time_slice`` and ``hard_stop=False`` are about pausing
    trials, which this service does not do yet: ``min_time_slice`` is accepted
    and has no effect, and ``hard_stop=False`` is refused.
    """

    def __init__(
        self,
        time_attr: str = "time_total_s",
        metric: str | None = None,
        mode: str | None = None,
        grace_period: float = 60.0,
        min_samples_required: int = 3,
        min_time_slice: float = 0,
        hard_stop: bool = True,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        _check_args(time_attr, grace_period, min_samples_required, min_time_slice)
        if not hard_stop:
            raise TuneConfigError(
                "MedianStoppingRule: hard_stop=False would pause trials, which "
                "this cluster does not support yet; use hard_stop=True to stop "
                "them instead."
            )
        self.time_attr = time_attr
        self.grace_period = grace_period
        self.min_samples_required = min_samples_required
        self.min_time_slice = min_time_slice
        self.hard_stop = True
        self._history: dict[str, list[tuple[float, float]]] = {}

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """Take the experiment's metric/mode unless given here; both must be set."""
        super().set_search_properties(metric, mode)
        _require_metric_mode(self)
        return True

    def on_trial_result(self, controller: Any, trial: Any, result: dict) -> str:
        """Record the result; STOP if the trial trails the others' median."""
        metric, mode = _require_metric_mode(self)
        time = _result_number(self, trial, result, self.time_attr)
        score = _score(_result_number(self, trial, result, metric), mode)
        history = self._history.setdefault(trial.trial_id, [])
        history.append((time, score))
        if time < self.grace_period:
            return self.CONTINUE
        averages = self._averages_of_others(trial.trial_id, time)
        if len(averages) < self.min_samples_required:
            return self.CONTINUE
        best = max(point_score for _, point_score in history)
        if best < statistics.median(averages):
            return self.STOP
        return self.CONTINUE

    def on_trial_remove(self, controller: Any, trial: Any) -> None:
        """Drop the trial's results from later comparisons."""
        self._history.pop(trial.trial_id, None)

    def _averages_of_others(self, trial_id: str, time: float) -> list[float]:
        """Running averages, up to ``time``, of the other trials that reached it."""
        averages = []
        for other_id, history in self._history.items():
            if other_id == trial_id or history[-1][0] < time:
                continue
            window = [s for t, s in history if self.grace_period <= t <= time]
            if window:
                averages.append(sum(window) / len(window))
        return averages


def _check_args(
    time_attr: Any,
    grace_period: Any,
    min_samples_required: Any,
    min_time_slice: Any,
) -> None:
    where = "MedianStoppingRule"
    _check_str(where, "time_attr", time_attr)
    _check_number(
        where,
        "grace_period",
        grace_period,
        "pass grace_period >= 0, the time_attr before which no trial is stopped",
        lambda value: value >= 0,
    )
    _check_number(
        where,
        "min_time_slice",
        min_time_slice,
        "pass min_time_slice >= 0",
        lambda value: value >= 0,
    )
    number = min_samples_required
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise TuneConfigError(
            f"{where}: min_samples_required={number!r} is not valid; pass an int "
            f">= 1, the number of other trials needed to compute a median."
        )
