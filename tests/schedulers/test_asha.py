"""ASHAScheduler fed fixed metric curves, result by result, with no servers."""

from __future__ import annotations

import json

import pytest

import tune_client as tune
from tune_client.config import TuneConfig
from tune_client.errors import TuneConfigError
from tune_client.experiment import ExperimentSpec
from tune_client.schedulers import (
    ASHAScheduler,
    AsyncHyperBandScheduler,
    TrialScheduler,
)
from tune_head.controller import ExperimentController, StopTrialAction
from tune_head.trial import Trial

CONTROLLER = object()  # the scheduler never looks at the controller

# Trials in the order they report; loss(t) = quality + 1 / t, lower is better.
QUALITIES = [0.3, 0.1, 0.9, 0.5, 0.8, 0.2, 0.7, 0.95, 0.6]


def make_trial(index: int, config: dict) -> Trial:
    return Trial(f"t{index}", f"t{index}", f"t{index}", "/r", config, {"cpu": 1.0})


def loss(config: dict, t: int) -> float:
    return config["quality"] + 1 / t


def simulate(scheduler: TrialScheduler, configs: list[dict], steps: int, metric):
    """Report iterations 1..steps round-robin; return the trials when done."""
    trials = [make_trial(i, config) for i, config in enumerate(configs)]
    for trial in trials:
        scheduler.on_trial_add(CONTROLLER, trial)
    running = list(trials)
    for t in range(1, steps + 1):
        for trial in list(running):
            result = {"training_iteration": t, **metric(trial.config, t)}
            trial.last_result = result
            if scheduler.on_trial_result(CONTROLLER, trial, result) == "STOP":
                scheduler.on_trial_complete(CONTROLLER, trial, result)
                running.remove(trial)
    for trial in running:
        scheduler.on_trial_complete(CONTROLLER, trial, trial.last_result)
    return trials


def stopped_at(trials: list[Trial]) -> dict[float, int]:
    return {t.config["quality"]: t.last_result["training_iteration"] for t in trials}


@pytest.mark.parametrize("mode", ["min", "max"])
def test_slow_trials_stop_at_first_rung_and_best_runs_to_max_t(mode):
    sign = 1 if mode == "min" else -1
    scheduler = ASHAScheduler(
        metric="objective", mode=mode, max_t=9, grace_period=1, reduction_factor=3
    )
    assert scheduler.rung_milestones == [[1, 3]]
    trials = simulate(
        scheduler,
        [{"quality": q} for q in QUALITIES],
        steps=20,
        metric=lambda config, t: {"objective": sign * loss(config, t)},
    )
    # Rung 1: 0.3 is first (nothing to meet), 0.1 beats it, then each trial
    # must reach the 2/3 quantile of the values recorded before it; only 0.2
    # does. Rung 3: 0.2 falls below the quantile of 0.3 and 0.1.
    assert stopped_at(trials) == {
        0.3: 9,
        0.1: 9,
        0.9: 1,
        0.5: 1,
        0.8: 1,
        0.2: 3,
        0.7: 1,
        0.95: 1,
        0.6: 1,
    }
    best = min(trials, key=lambda t: sign * t.last_result["objective"])
    assert best.config == {"quality": 0.1}
    assert best.last_result["training_iteration"] == 9


def judge_in_order(scheduler, values: list[float]) -> list[str]:
    """Each value from a new trial at training_iteration 1, in order."""
    metric = scheduler.metric
    return [
        scheduler.on_trial_result(
            CONTROLLER, make_trial(i, {}), {"training_iteration": 1, metric: value}
        )
        for i, value in enumerate(values)
    ]


def test_each_arrival_meets_the_quantile_of_the_values_recorded_before_it():
    scheduler = ASHAScheduler(
        metric="score", mode="max", max_t=100, grace_period=1, reduction_factor=3
    )
    decisions = judge_in_order(scheduler, [5, 3, 8, 6, 6, 5, 5.7])
    # 5: first at the rung, no cutoff.  3: below 5, the quantile of [5].
    # 8: above 4.33 of [3, 5].  6: meets 6.0 of [3, 5, 8] (a tie continues).
    # 6: meets 6.0 of [3, 5, 6, 8].  5 and then 5.7: below 6.0.
    assert decisions == [
        "CONTINUE",
        "STOP",
        "CONTINUE",
        "CONTINUE",
        "CONTINUE",
        "STOP",
        "STOP",
    ]
    (rung, *_) = scheduler._brackets[0].rungs
    assert sorted(rung.recorded.values()) == [3, 5, 5, 5.7, 6, 6, 8]


def test_the_second_trial_at_a_rung_must_match_the_first():
    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=9, reduction_factor=3)
    assert judge_in_order(scheduler, [1.0, 1.5]) == ["CONTINUE", "STOP"]


def test_nan_values_are_left_out_of_the_cutoff():
    scheduler = ASHAScheduler(metric="score", mode="max", max_t=4, reduction_factor=2)
    decisions = judge_in_order(scheduler, [float("nan"), 3.0, 1.0, float("nan")])
    # The first NaN has no cutoff to meet; the 3.0 after it has none either.
    assert decisions == ["CONTINUE", "CONTINUE", "STOP", "STOP"]


def test_ties_and_nan_metric():
    scheduler = ASHAScheduler(metric="loss", mode="min", max_t=4, reduction_factor=2)
    results = [1.0, 1.0, float("nan")]
    decisions = [
        scheduler.on_trial_result(
            CONTROLLER, make_trial(i, {}), {"training_iteration": 1, "loss": value}
        )
        for i, value in enumerate(results)
    ]
    assert decisions == ["CONTINUE", "CONTINUE", "STOP"]


def test_brackets_are_assigned_round_robin():
    scheduler = ASHAScheduler(
        metric="loss", mode="min", max_t=8, reduction_factor=2, brackets=2
    )
    assert scheduler.rung_milestones == [[1, 2, 4], [2, 4]]
    good_a, good_b, bad_a, bad_b = (make_trial(i, {}) for i in range(4))
    for trial in (good_a, good_b, bad_a, bad_b):  # brackets 0, 1, 0, 1
        scheduler.on_trial_add(CONTROLLER, trial)

    def report(trial: Trial, t: int, value: float) -> str:
        result = {"training_iteration": t, "loss": value}
        return scheduler.on_trial_result(CONTROLLER, trial, result)

    assert report(good_a, 1, 0.1) == "CONTINUE"
    assert report(good_b, 1, 0.1) == "CONTINUE"
    assert report(bad_a, 1, 9.0) == "STOP"  # bracket 0 has a rung at 1
    assert report(bad_b, 1, 9.0) == "CONTINUE"  # bracket 1 starts at 2
    assert report(good_b, 2, 0.1) == "CONTINUE"
    assert report(bad_b, 2, 9.0) == "STOP"


def test_max_t_stops_only_with_stop_last_trials():
    result = {"training_iteration": 5, "loss": 1.0}
    for stop_last, expected in ((True, "STOP"), (False, "CONTINUE")):
        scheduler = ASHAScheduler(
            metric="loss", mode="min", max_t=5, stop_last_trials=stop_last
        )
        assert scheduler.on_trial_result(CONTROLLER, make_trial(0, {}), result) == (
            expected
        )


def test_alias_and_exports():
    assert ASHAScheduler is AsyncHyperBandScheduler
    assert issubclass(ASHAScheduler, TrialScheduler)
    assert ASHAScheduler().rung_milestones == [[1, 4, 16, 64]]


def test_metric_and_mode_come_from_tune_config_unless_given():
    scheduler = ASHAScheduler()
    scheduler.set_search_properties("loss", "min")
    assert (scheduler.metric, scheduler.mode) == ("loss", "min")
    own = ASHAScheduler(metric="acc", mode="max")
    own.set_search_properties("loss", "min")
    assert (own.metric, own.mode) == ("acc", "max")


def test_no_metric_anywhere_is_an_error_naming_both_places():
    with pytest.raises(TuneConfigError, match=r"metric=.*TuneConfig"):
        ASHAScheduler().set_search_properties(None, None)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mode": "best"}, "mode="),
        ({"max_t": 0}, "max_t=0"),
        ({"max_t": -5}, "max_t=-5"),
        ({"max_t": float("inf")}, "max_t=inf"),
        ({"grace_period": 0}, "grace_period=0"),
        ({"grace_period": 200}, "grace_period=200"),
        ({"reduction_factor": 1}, "reduction_factor=1"),
        ({"reduction_factor": True}, "reduction_factor=True"),
        ({"brackets": 0}, "brackets=0"),
        ({"brackets": 1.5}, "brackets=1.5"),
        ({"time_attr": ""}, "time_attr="),
    ],
)
def test_invalid_arguments_name_the_argument_and_fix(kwargs, name):
    with pytest.raises(TuneConfigError) as info:
        ASHAScheduler(metric="loss", **kwargs)
    message = str(info.value)
    assert name in message
    assert "ASHAScheduler" in message or "AsyncHyperBandScheduler" in message
    assert "pass" in message or "use" in message


@pytest.mark.parametrize("missing", ["loss", "training_iteration"])
def test_result_without_metric_lists_the_keys_it_has(missing):
    scheduler = ASHAScheduler(metric="loss", mode="min")
    result = {"training_iteration": 1, "loss": 0.5, "accuracy": 0.9}
    del result[missing]
    with pytest.raises(TuneConfigError) as info:
        scheduler.on_trial_result(CONTROLLER, make_trial(0, {}), result)
    message = str(info.value)
    assert repr(missing) in message
    assert str(sorted(result)) in message
    assert "t0" in message


def test_controller_stops_the_trials_asha_rejects():
    scheduler = ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2)
    spec = ExperimentSpec(
        name="exp",
        trainable_name="train",
        trainable_object_id="0" * 64,
        object_ids=[],
        resources={"cpu": 1.0},
        param_space={"q": tune.grid_search([0.1, 5.0])},
        tune_config=TuneConfig(metric="loss", mode="min", scheduler=scheduler),
    )
    controller = ExperimentController("abcdef0123", spec, "/results/exp")
    trials = []
    while (trial := controller.next_trial_to_start()) is not None:
        controller.on_trial_started(trial, "w1")
        trials.append(trial)
    for trial in trials:
        result = {"training_iteration": 1, "loss": trial.config["q"]}
        controller.on_result(trial, 1, json.dumps(result).encode())
    stops = [a for a in controller.take_actions() if isinstance(a, StopTrialAction)]
    assert [a.trial.config["q"] for a in stops] == [5.0]
    assert "AsyncHyperBandScheduler" in stops[0].reason
