"""Asynchronous successive halving (ASHA), with Ray Tune's arguments.

Each bracket has rungs at ``grace_period * reduction_factor ** k`` (in units of
``time_attr``) below ``max_t``; bracket ``s`` skips the first ``s`` of them.
A result is judged at the highest rung it has reached that holds no value of
its trial yet, against the values that rung recorded before it, as in Ray Tune:

* The cutoff is the ``1 - 1 / reduction_factor`` quantile of those values
  (linear interpolation between the two nearest, NaN values left out).
* The first trial at a rung has no cutoff to meet and continues; the second
  continues if it is at least as good as the first; and so on.
* A trial continues when its value is at least the cutoff (ties count in its
  favour). A NaN metric is worse than any cutoff (Ray Tune would let it go on).

Then the value is recorded at that rung. A result that jumps past several
rungs is judged at the highest; a later result of the same trial may then be
judged at a lower rung it skipped (unless ``stop_last_trials`` is off).
Trials are spread over the brackets round-robin, in the order the scheduler
first sees them. With ``stop_last_trials`` a trial is stopped once
``time_attr`` reaches ``max_t``, before any rung judges that result.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tune_client.errors import TuneConfigError
from tune_client.schedulers.trial_scheduler import TrialScheduler

__all__ = ["ASHAScheduler", "AsyncHyperBandScheduler"]


# ---------------------------------------------------------------------------
# helpers shared with the median stopping rule


def _check_number(
    where: str, name: str, value: Any, rule: str, ok: Callable[[float], bool]
) -> None:
    """Raise unless ``value`` is a finite real number (not bool) and ``ok(value)``."""
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or not ok(value):
        raise TuneConfigError(f"{where}: {name}={value!r} is not valid; {rule}.")


def _check_str(where: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TuneConfigError(
            f"{where}: {name}={value!r} is not valid; pass the name of a result "
            f'key as a str, e.g. {name}="training_iteration".'
        )


def _require_metric_mode(scheduler: TrialScheduler) -> tuple[str, str]:
    """The scheduler's metric and mode, or an error saying where to set them."""
    name = type(scheduler).__name__
    if not scheduler.metric or not scheduler.mode:
        raise TuneConfigError(
            f"{name} needs a metric and a mode, but has metric="
            f"{scheduler.metric!r}, mode={scheduler.mode!r}; pass metric= and "
            f'mode="min" or "max" to {name}(...) or to TuneConfig(...).'
        )
    return scheduler.metric, scheduler.mode


def _result_number(scheduler: TrialScheduler, trial: Any, result: dict, key: str):
    """``result[key]`` as a float; a clear error if the trial does not report it."""
    name = type(scheduler).__name__
    trial_id = getattr(trial, "trial_id", trial)
    if key not in result:
        raise TuneConfigError(
            f"{name} reads {key!r} from every result, but trial {trial_id} "
            f"reported a result without it; the result has the keys "
            f"{sorted(result)}. Report {key!r} from the trainable, or pass one "
            f"of these keys as metric/time_attr."
        )
    value = result[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TuneConfigError(
            f"{name} needs a number in result[{key!r}], but trial {trial_id} "
            f"reported {type(value).__name__} {value!r}; report an int or float."
        )
    return float(value)


def _score(value: float, mode: str) -> float:
    """The value turned so that higher is better; NaN becomes the worst."""
    if math.isnan(value):
        return -math.inf
    return value if mode == "max" else -value


def _percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of sorted ``values``, interpolated linearly."""
    position = fraction * (len(values) - 1)
    low = math.floor(position)
    weight = position - low
    if weight == 0:
        return values[low]
    return values[low] + (values[low + 1] - values[low]) * weight


# ---------------------------------------------------------------------------
# brackets and rungs


@dataclass
class _Rung:
    milestone: float
    # Trial id -> score, higher is better; a NaN metric stays NaN.
    recorded: dict[str, float] = field(default_factory=dict)

    def cutoff(self, reduction_factor: float) -> float | None:
        """The score a newcomer must reach; None while nothing is recorded."""
        values = sorted(v for v in self.recorded.values() if not math.isnan(v))
        if not values:
            return None
        return _percentile(values, 1 - 1 / reduction_factor)


class _Bracket:
    """One bracket: rungs in increasing order of milestone."""

    def __init__(self, milestones: list[float], reduction_factor: float) -> None:
        self.rungs = [_Rung(milestone) for milestone in milestones]
        self.reduction_factor = reduction_factor

    def judge(self, trial_id: str, time: float, score: float, scan_all: bool) -> bool:
        """Record the score at a rung (see the module docstring); True to stop.

        ``scan_all`` (Ray's ``stop_last_trials``) lets a result fill a lower
        rung its trial skipped once the higher rungs hold its values.
        """
        for rung in reversed(self.rungs):
            if time < rung.milestone:
                continue
            if trial_id in rung.recorded:
                if scan_all:
                    continue
                return False
            cutoff = rung.cutoff(self.reduction_factor)
            rung.recorded[trial_id] = score
            if cutoff is None:
                return False
            return math.isnan(score) or score < cutoff
        return False


def _milestones(
    grace_period: float, max_t: float, reduction_factor: float, skip: int
) -> list[float]:
    """``grace_period * reduction_factor ** k`` below ``max_t``, from k=skip."""
    milestones = []
    k = skip
    while (milestone := grace_period * reduction_factor**k) < max_t:
        milestones.append(milestone)
        k += 1
    return milestones


# ---------------------------------------------------------------------------
# the scheduler


class AsyncHyperBandScheduler(TrialScheduler):
    """Asynchronous successive halving (ASHA), as in Ray Tune.

    Stops trials that, at a rung, are not among the best ``1 /
    reduction_factor`` of the trials recorded at that rung (see the module
    docstring for the exact rule). ``time_attr`` is the result key that
    measures progress; ``max_t`` is the most any trial gets; ``grace_period``
    is the first rung; ``brackets`` is the number of brackets (trials are
    assigned round-robin); with ``stop_last_trials`` trials stop at ``max_t``.
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: float = 100,
        grace_period: float = 1,
        reduction_factor: float = 4,
        brackets: int = 1,
        stop_last_trials: bool = True,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        _check_args(type(self).__name__, time_attr, max_t, grace_period)
        _check_factor(type(self).__name__, reduction_factor, brackets)
        self.time_attr = time_attr
        self.max_t = max_t
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor
        self.stop_last_trials = bool(stop_last_trials)
        self._brackets = [
            _Bracket(
                _milestones(grace_period, max_t, reduction_factor, s),
                reduction_factor,
            )
            for s in range(brackets)
        ]
        self._trial_bracket: dict[str, _Bracket] = {}
        self._next_bracket = 0

    @property
    def rung_milestones(self) -> list[list[float]]:
        """Each bracket's rung milestones, in units of ``time_attr``."""
        return [[rung.milestone for rung in b.rungs] for b in self._brackets]

    def set_search_properties(self, metric: str | None, mode: str | None) -> bool:
        """Take the experiment's metric/mode unless given here; both must be set."""
        super().set_search_properties(metric, mode)
        _require_metric_mode(self)
        return True

    def on_trial_add(self, controller: Any, trial: Any) -> None:
        """Put the new trial into the next bracket, round-robin."""
        self._bracket_of(trial.trial_id)

    def on_trial_result(self, controller: Any, trial: Any, result: dict) -> str:
        """Judge the result at a rung it newly reached; STOP if it falls behind."""
        time, score = self._time_and_score(trial, result)
        if self.stop_last_trials and time >= self.max_t:
            return self.STOP
        bracket = self._bracket_of(trial.trial_id)
        if bracket.judge(trial.trial_id, time, score, self.stop_last_trials):
            return self.STOP
        return self.CONTINUE

    def on_trial_complete(self, controller: Any, trial: Any, result: dict) -> None:
        """Record the final result at a rung it reached but was not judged at."""
        try:
            time, score = self._time_and_score(trial, result or {})
        except TuneConfigError:
            pass  # nothing usable to record; on_trial_result reported the cause
        else:
            bracket = self._bracket_of(trial.trial_id)
            bracket.judge(trial.trial_id, time, score, self.stop_last_trials)
        self._trial_bracket.pop(trial.trial_id, None)

    def _time_and_score(self, trial: Any, result: dict) -> tuple[float, float]:
        """``time_attr`` and the metric turned so that higher is better."""
        metric, mode = _require_metric_mode(self)
        time = _result_number(self, trial, result, self.time_attr)
        value = _result_number(self, trial, result, metric)
        return time, value if mode == "max" else -value

    def on_trial_error(self, controller: Any, trial: Any) -> None:
        """Forget the trial; what it recorded at rungs stays."""
        self._trial_bracket.pop(trial.trial_id, None)

    def on_trial_remove(self, controller: Any, trial: Any) -> None:
        """Forget the trial; what it recorded at rungs stays."""
        self._trial_bracket.pop(trial.trial_id, None)

    def _bracket_of(self, trial_id: str) -> _Bracket:
        bracket = self._trial_bracket.get(trial_id)
        if bracket is None:
            bracket = self._brackets[self._next_bracket % len(self._brackets)]
            self._next_bracket += 1
            self._trial_bracket[trial_id] = bracket
        return bracket


ASHAScheduler = AsyncHyperBandScheduler


def _check_args(where: str, time_attr: Any, max_t: Any, grace_period: Any) -> None:
    _check_str(where, "time_attr", time_attr)
    _check_number(
        where,
        "max_t",
        max_t,
        "pass a finite max_t > 0, the most time_attr any trial may reach",
        lambda value: value > 0,
    )
    _check_number(
        where,
        "grace_period",
        grace_period,
        f"pass 1 <= grace_period <= max_t ({max_t!r}), the time_attr at which "
        f"trials are first compared",
        lambda value: 1 <= value <= max_t,
    )


def _check_factor(where: str, reduction_factor: Any, brackets: Any) -> None:
    _check_number(
        where,
        "reduction_factor",
        reduction_factor,
        "pass reduction_factor > 1, e.g. 4 to keep the top quarter at each rung",
        lambda value: value > 1,
    )
    if isinstance(brackets, bool) or not isinstance(brackets, int) or brackets < 1:
        raise TuneConfigError(
            f"{where}: brackets={brackets!r} is not valid; pass an int >= 1 "
            f"(1, the default, is plain asynchronous successive halving)."
        )
