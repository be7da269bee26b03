"""Stoppers fed results by hand, and what RunConfig(stop=...) accepts."""

from __future__ import annotations

import datetime
import pickle

import pytest

import tune_client as tune
from tune_client.config import RunConfig
from tune_client.errors import TuneConfigError
from tune_client.stopper import (
    CombinedStopper,
    FunctionStopper,
    MaximumIterationStopper,
    Stopper,
    TimeoutStopper,
    TrialPlateauStopper,
    as_stopper,
    find_metric,
    is_missing,
    stop_criteria_reason,
)


def feed(stopper: Stopper, trial_id: str, values: list, key: str = "loss") -> list:
    return [stopper(trial_id, {key: value}) for value in values]


def test_importable_as_ray_tune_names_them():
    assert tune.stopper.TrialPlateauStopper is TrialPlateauStopper
    assert tune.Stopper is Stopper
    assert issubclass(CombinedStopper, Stopper)


def test_the_base_class_asks_for_both_methods():
    with pytest.raises(NotImplementedError, match="__call__"):
        Stopper()("t", {})
    with pytest.raises(NotImplementedError, match="stop_all"):
        Stopper().stop_all()


def test_maximum_iteration_stopper_counts_each_trials_results():
    stopper = MaximumIterationStopper(max_iter=3)
    assert feed(stopper, "a", [1, 2]) == [False, False]
    assert feed(stopper, "b", [1]) == [False]
    assert feed(stopper, "a", [3, 4]) == [True, True]
    assert stopper.stop_all() is False


def test_plateau_waits_for_grace_period_and_a_full_window():
    stopper = TrialPlateauStopper("loss", std=0.01, num_results=3, grace_period=4)
    # Flat from the start, but the fourth result is the first one judged.
    assert feed(stopper, "a", [1.0, 1.0, 1.0, 1.0]) == [False, False, False, True]
    assert feed(stopper, "b", [1.0, 2.0, 1.0, 1.0, 1.0]) == [False] * 4 + [True]
    assert stopper.stop_all() is False


def test_plateau_needs_the_std_strictly_below_the_bound():
    stopper = TrialPlateauStopper("loss", std=0.5, num_results=2, grace_period=0)
    # Population std of [1, 2] is exactly 0.5; of [2, 2.5] it is 0.25.
    assert feed(stopper, "a", [1.0, 2.0, 2.5]) == [False, False, True]


def test_plateau_threshold_keeps_a_trial_stuck_at_a_poor_value_going():
    stopper = TrialPlateauStopper(
        "loss", num_results=2, grace_period=0, metric_threshold=0.5, mode="min"
    )
    assert feed(stopper, "a", [0.9, 0.9, 0.4, 0.4]) == [False, False, False, True]
    high = TrialPlateauStopper(
        "acc", num_results=2, grace_period=0, metric_threshold=0.8, mode="max"
    )
    assert feed(high, "a", [0.5, 0.5, 0.9, 0.9], key="acc") == [False] * 3 + [True]


def test_plateau_never_stops_on_results_without_the_metric():
    stopper = TrialPlateauStopper("loss", num_results=2, grace_period=0)
    assert feed(stopper, "a", [1.0, 1.0], key="other") == [False, False]
    # A nested metric is named with a slash.
    nested = TrialPlateauStopper("val/loss", num_results=2, grace_period=0)
    results = [{"val": {"loss": 1.0}}, {"val": {"loss": 1.0}}]
    assert [nested("a", r) for r in results] == [False, True]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"metric": ""}, "metric="),
        ({"std": -1}, "std=-1"),
        ({"num_results": 0}, "num_results=0"),
        ({"grace_period": 1.5}, "grace_period=1.5"),
        ({"metric_threshold": 0.5}, "metric_threshold=0.5"),
        ({"metric_threshold": 0.5, "mode": "best"}, "mode='best'"),
        ({"mode": "best"}, "mode='best'"),
    ],
)
def test_plateau_arguments_are_checked_at_once(kwargs, name):
    options = {"metric": "loss", **kwargs}
    with pytest.raises(TuneConfigError) as info:
        TrialPlateauStopper(**options)
    assert name in str(info.value) and "TrialPlateauStopper" in str(info.value)


def test_timeout_counts_from_the_first_check(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("tune_client.stopper.time.time", lambda: now[0])
    stopper = TimeoutStopper(10)
    now[0] += 500  # submitting and starting up does not count
    assert stopper.stop_all() is False
    now[0] += 9
    assert stopper.stop_all() is False
    assert stopper("a", {}) is False
    now[0] += 1
    assert stopper.stop_all() is True


def test_timeout_takes_a_timedelta_and_restarts_its_clock_when_unpickled(
    monkeypatch,
):
    now = [0.0]
    monkeypatch.setattr("tune_client.stopper.time.time", lambda: now[0])
    stopper = TimeoutStopper(datetime.timedelta(seconds=5))
    stopper.stop_all()
    now[0] += 3
    stopper.stop_all()
    copy = pickle.loads(pickle.dumps(stopper))
    now[0] += 100  # time in transit is not counted
    assert copy.stop_all() is False
    now[0] += 2
    assert copy.stop_all() is True


def test_timeout_refuses_what_is_not_a_duration():
    with pytest.raises(TuneConfigError, match="seconds or a datetime.timedelta"):
        TimeoutStopper("10s")


class Recording(Stopper):
    def __init__(self, stop: bool, stop_all: bool = False) -> None:
        self.stop, self.all, self.seen = stop, stop_all, []

    def __call__(self, trial_id, result):
        self.seen.append(trial_id)
        return self.stop

    def stop_all(self):
        return self.all


def test_combined_stopper_stops_what_any_one_stops():
    never, always = Recording(False), Recording(True)
    assert CombinedStopper(never, always)("a", {}) is True
    assert CombinedStopper(never, Recording(False))("a", {}) is False
    assert CombinedStopper(never, Recording(False, stop_all=True)).stop_all()
    assert not CombinedStopper(never, Recording(False)).stop_all()
    # As in Ray Tune, the first stopper that says stop decides.
    first, second = Recording(True), Recording(False)
    CombinedStopper(first, second)("a", {})
    assert (first.seen, second.seen) == (["a"], [])


def test_combined_stopper_refuses_what_is_not_a_stopper():
    with pytest.raises(TuneConfigError, match="FunctionStopper"):
        CombinedStopper(MaximumIterationStopper(2), lambda trial_id, result: True)


def test_function_stopper_and_lookalikes():
    stopper = FunctionStopper(lambda trial_id, result: result["loss"] < 1)
    assert feed(stopper, "a", [2, 0.5]) == [False, True]
    assert stopper.stop_all() is False

    class LooksLikeAStopper:
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return True

    with pytest.raises(TuneConfigError, match="subclass Stopper"):
        RunConfig(stop=LooksLikeAStopper())


def test_run_config_stop_takes_what_ray_tune_takes():
    assert as_stopper(None) is None and as_stopper({"a": 1}) is None
    plateau = TrialPlateauStopper("loss")
    assert as_stopper(plateau) is plateau
    assert isinstance(as_stopper(lambda trial_id, result: True), FunctionStopper)
    combined = as_stopper([plateau, MaximumIterationStopper(3)])
    assert isinstance(combined, CombinedStopper)
    RunConfig(stop=[plateau, TimeoutStopper(5)])


@pytest.mark.parametrize(
    "stop, fragment",
    [
        (5, "got int"),
        ([MaximumIterationStopper(1), "x"], "CombinedStopper takes Stopper"),
        ({"loss": "low"}, "must be a number"),
        ({"val": {"loss": 0.1}}, '"val/name"'),
        ({3: 1.0}, "keys are the names"),
    ],
)
def test_run_config_refuses_a_stop_that_cannot_work(stop, fragment):
    with pytest.raises(TuneConfigError) as info:
        RunConfig(stop=stop)
    assert fragment in str(info.value)


def test_stop_dict_reads_nested_metrics_and_lists_missing_keys():
    result = {"training_iteration": 3, "val": {"acc": 0.95}, "a/b": 2}
    assert find_metric(result, "val/acc") == 0.95
    assert find_metric(result, "a/b") == 2
    assert is_missing(find_metric(result, "val/loss"))
    reason, missing = stop_criteria_reason(
        {"val/acc": 0.9, "trainig_iteration": 10}, result
    )
    assert reason == "val/acc=0.95 reached the stop value 0.9"
    assert missing == ["trainig_iteration"]
    assert stop_criteria_reason({"val/acc": 0.99}, result) == ("", [])
