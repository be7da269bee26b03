"""Stoppers: what ends a trial, or the whole experiment, before it ends itself.

``RunConfig(stop=...)`` takes one of:

* a dict of bounds, ``{"training_iteration": 10, "val/acc": 0.9}``: a trial
  stops once a result reaches any of them (``result[key] >= bound``). Nested
  metrics are named with slashes. A key the results lack is skipped with a
  warning that lists the keys they do have, as in Ray Tune;
* a function ``fn(trial_id, result) -> bool``, wrapped in ``FunctionStopper``;
* a ``Stopper``, or a list of them (combined with ``CombinedStopper``).

A Stopper runs on the head, so it must be picklable. It sees every result of
every trial through ``__call__`` (True stops that trial), and ``stop_all`` is
asked after each result and on the head's periodic tick (about twice a second);
True there stops the experiment: running trials stop, pending ones never start
(they stay pending, so ``Tuner.restore`` can still run them), and ``fit()``
returns. The head keeps a Stopper in memory only: one restored with the
experiment, or reloaded by a restarted head, starts from its state at submit.
"""

from __future__ import annotations

import datetime
import logging
import math
import numbers
import statistics
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from typing import Any

from tune_client.errors import TuneConfigError

__all__ = [
    "CombinedStopper",
    "FunctionStopper",
    "MaximumIterationStopper",
    "Stopper",
    "TimeoutStopper",
    "TrialPlateauStopper",
]

log = logging.getLogger(__name__)

_MISSING = object()


class Stopper:
    """Base class: decide per result whether a trial stops, and when all do.

    Subclass it and implement both methods. ``__call__(trial_id, result)``
    returns True to stop that trial; ``stop_all()`` returns True to stop the
    whole experiment.
    """

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True if the trial that reported ``result`` should stop now."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(trial_id, result)"
        )

    def stop_all(self) -> bool:
        """True if the whole experiment should stop now."""
        raise NotImplementedError(f"{type(self).__name__} must implement stop_all()")


class CombinedStopper(Stopper):
    """Stops what any of ``stoppers`` stops (a logical OR, in the given order).

    As in Ray Tune, the first stopper that says stop decides; the ones after
    it are not asked about that result.
    """

    def __init__(self, *stoppers: Stopper) -> None:
        bad = [type(s).__name__ for s in stoppers if not isinstance(s, Stopper)]
        if bad:
            raise TuneConfigError(
                f"CombinedStopper takes Stopper objects, got {', '.join(bad)}; "
                "wrap a plain function in FunctionStopper(fn) first."
            )
        self._stoppers = stoppers

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return any(stopper(trial_id, result) for stopper in self._stoppers)

    def stop_all(self) -> bool:
        return any(stopper.stop_all() for stopper in self._stoppers)


class MaximumIterationStopper(Stopper):
    """Stops each trial after it has reported ``max_iter`` results.

    It counts the results it has seen, as Ray Tune's does, not the reported
    ``training_iteration``; use ``stop={"training_iteration": n}`` for that.
    """

    def __init__(self, max_iter: int) -> None:
        _check_int("MaximumIterationStopper", "max_iter", max_iter, minimum=0)
        self._max_iter = max_iter
        self._iter: dict[str, int] = defaultdict(int)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        self._iter[trial_id] += 1
        return self._iter[trial_id] >= self._max_iter

    def stop_all(self) -> bool:
        return False


class TrialPlateauStopper(Stopper):
    """Stops a trial whose ``metric`` has stopped moving.

    A trial stops when the population standard deviation of its last
    ``num_results`` values of ``metric`` is below ``std``, but not before it
    has reported ``grace_period`` results. With ``metric_threshold`` the
    latest value must also be at or past it (at most it for ``mode="min"``,
    at least it for ``mode="max"``), so a trial stuck at a poor value goes on.
    """

    def __init__(
        self,
        metric: str,
        std: float = 0.01,
        num_results: int = 4,
        grace_period: int = 4,
        metric_threshold: float | None = None,
        mode: str | None = None,
    ) -> None:
        _check_plateau_args(metric, std, num_results, grace_period)
        _check_threshold(metric_threshold, mode)
        self._metric = metric
        self._std = std
        self._num_results = num_results
        self._grace_period = grace_period
        self._metric_threshold = metric_threshold
        self._mode = mode
        self._iter: dict[str, int] = defaultdict(int)
        self._trial_results: dict[str, deque] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = find_metric(result, self._metric)
        window = self._trial_results.setdefault(
            trial_id, deque(maxlen=self._num_results)
        )
        window.append(value if _is_number(value) else None)
        self._iter[trial_id] += 1
        if self._iter[trial_id] < self._grace_period:
            return False
        if len(window) < self._num_results or None in window:
            return False  # too few values, or one that cannot plateau
        if not self._past_threshold(value):
            return False
        return statistics.pstdev(window) < self._std

    def _past_threshold(self, value: float) -> bool:
        threshold = self._metric_threshold
        if threshold is None:
            return True
        return value <= threshold if self._mode == "min" else value >= threshold

    def stop_all(self) -> bool:
        return False


class TimeoutStopper(Stopper):
    """Stops the experiment once ``timeout`` (seconds, or a timedelta) passed.

    The clock starts at the first ``stop_all`` call on the head, so the time
    it takes to submit the experiment is not counted.
    """

    def __init__(self, timeout: float | datetime.timedelta) -> None:
        if isinstance(timeout, datetime.timedelta):
            seconds = timeout.total_seconds()
        elif _is_number(timeout) and not isinstance(timeout, bool):
            seconds = float(timeout)
        else:
            raise TuneConfigError(
                f"TimeoutStopper(timeout={timeout!r}): pass a number of seconds "
                "or a datetime.timedelta."
            )
        self._timeout_seconds = seconds
        self._budget = seconds
        self._last_check: float | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        now = time.time()
        if self._last_check is not None:
            self._budget -= now - self._last_check
        self._last_check = now
        if self._budget > 0:
            return False
        log.info(
            "the timeout of %g s ran out; stopping all trials", self._timeout_seconds
        )
        return True

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled on the head: the clock starts again at the next check."""
        self.__dict__.update(state, _last_check=None)


class FunctionStopper(Stopper):
    """Stops a trial when ``function(trial_id, result)`` returns True."""

    def __init__(self, function: Callable[[str, dict], bool]) -> None:
        if not self.is_valid_function(function):
            raise TuneConfigError(
                f"FunctionStopper takes a function fn(trial_id, result) -> bool, "
                f"got {type(function).__name__}; pass a Stopper as it is."
            )
        self._fn = function

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return bool(self._fn(trial_id, result))

    def stop_all(self) -> bool:
        return False

    @classmethod
    def is_valid_function(cls, fn: Any) -> bool:
        """True for a plain callable; an error for one that looks like a Stopper.

        An object with ``stop_all`` that does not subclass Stopper would have
        its ``stop_all`` ignored, so it is refused instead.
        """
        if not callable(fn) or isinstance(fn, Stopper):
            return False
        if hasattr(fn, "stop_all"):
            raise TuneConfigError(
                f"{type(fn).__name__} has stop_all() but does not subclass "
                "tune.stopper.Stopper, so its stop_all() would never be asked; "
                "make it subclass Stopper."
            )
        return True


# ---------------------------------------------------------------------------
# RunConfig(stop=...)


def as_stopper(stop: Any) -> Stopper | None:
    """The Stopper that ``RunConfig(stop=stop)`` means; None for a dict or None.

    Raises TuneConfigError, naming the fix, for anything else.
    """
    if stop is None or isinstance(stop, Mapping):
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, (list, tuple)):
        return CombinedStopper(*stop)
    if FunctionStopper.is_valid_function(stop):
        return FunctionStopper(stop)
    raise TuneConfigError(
        f"RunConfig(stop=...) got {type(stop).__name__}; pass a dict of result "
        "bounds, a function fn(trial_id, result) -> bool, a tune.stopper.Stopper "
        "or a list of Stoppers."
    )


def check_stop_criteria(stop: Mapping) -> None:
    """Fail at once on a stop dict whose keys or bounds cannot work."""
    for key, bound in stop.items():
        if not isinstance(key, str) or not key:
            raise TuneConfigError(
                f"RunConfig(stop=...) has the key {key!r}; keys are the names of "
                'reported metrics as str, e.g. stop={"training_iteration": 10}.'
            )
        if isinstance(bound, Mapping):
            raise TuneConfigError(
                f"RunConfig(stop=...) has a dict under {key!r}; name nested "
                f'metrics with slashes instead, e.g. stop={{"{key}/name": 1.0}}.'
            )
        if not _is_number(bound):
            raise TuneConfigError(
                f"RunConfig(stop=...) bounds {key!r} by {bound!r}; a trial stops "
                "when the metric reaches its bound, so the bound must be a number."
            )


def stop_criteria_reason(stop: Mapping, result: dict) -> tuple[str, list[str]]:
    """The first bound ``result`` reaches ("" for none) and the keys it lacks."""
    reason, missing = "", []
    for key, bound in stop.items():
        value = find_metric(result, key)
        if value is _MISSING:
            missing.append(key)
        elif not reason and _is_number(value) and value >= bound:
            reason = f"{key}={value} reached the stop value {bound}"
    return reason, missing


def missing_stop_keys_message(missing: list[str], result: dict) -> str:
    """What to tell the user when results lack some of the stop dict's keys."""
    reported = sorted(flat_keys(result))
    return (
        f"RunConfig(stop=...) names {missing}, which a result does not report; "
        f"it reports {reported}. A trial that never reports them runs until it "
        "ends by itself: check the spelling, and name nested metrics with "
        'slashes, e.g. "val/acc".'
    )


def find_metric(result: Mapping, key: str) -> Any:
    """``result[key]``, where ``"a/b"`` also means ``result["a"]["b"]``.

    Returns a private marker (compare with ``is``) when the key is absent.
    """
    if key in result:
        return result[key]
    value: Any = result
    for part in key.split("/"):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def is_missing(value: Any) -> bool:
    """True for what ``find_metric`` returns when the key is absent."""
    return value is _MISSING


def flat_keys(result: Mapping, prefix: str = "") -> list[str]:
    """The result's keys, nested ones joined with slashes."""
    keys = []
    for key, value in result.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            keys.extend(flat_keys(value, name))
        else:
            keys.append(name)
    return keys


# ---------------------------------------------------------------------------
# argument checks


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real)


def _check_int(where: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TuneConfigError(
            f"{where}({name}={value!r}): pass an int of at least {minimum}."
        )


def _check_plateau_args(
    metric: Any, std: Any, num_results: Any, grace_period: Any
) -> None:
    where = "TrialPlateauStopper"
    if not isinstance(metric, str) or not metric:
        raise TuneConfigError(
            f"{where}(metric={metric!r}): pass the name of a reported metric as a "
            'str, e.g. metric="loss".'
        )
    if not _is_number(std) or isinstance(std, bool) or not std >= 0:
        raise TuneConfigError(
            f"{where}(std={std!r}): pass a number >= 0, the standard deviation "
            "below which a trial counts as plateaued."
        )
    _check_int(where, "num_results", num_results, minimum=1)
    _check_int(where, "grace_period", grace_period, minimum=0)


def _check_threshold(metric_threshold: Any, mode: Any) -> None:
    where = "TrialPlateauStopper"
    if metric_threshold is None:
        if mode not in (None, "min", "max"):
            raise TuneConfigError(f'{where}(mode={mode!r}): use "min" or "max".')
        return
    if not _is_number(metric_threshold) or not math.isfinite(metric_threshold):
        raise TuneConfigError(
            f"{where}(metric_threshold={metric_threshold!r}): pass a finite number."
        )
    if mode not in ("min", "max"):
        raise TuneConfigError(
            f'{where}: metric_threshold={metric_threshold!r} needs mode="min" '
            f'(stop only at or below it) or mode="max" (at or above it); got '
            f"mode={mode!r}."
        )
