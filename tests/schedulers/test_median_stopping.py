"""MedianStoppingRule fed fixed results, with no servers."""

from __future__ import annotations

import pytest

from tune_client.errors import TuneConfigError
from tune_client.schedulers import MedianStoppingRule
from tune_head.trial import Trial

CONTROLLER = object()  # the scheduler never looks at the controller


def make_trial(name: str) -> Trial:
    return Trial(name, name, name, "/r", {}, {"cpu": 1.0})


def make_rule(**kwargs) -> MedianStoppingRule:
    settings = {
        "time_attr": "training_iteration",
        "metric": "loss",
        "mode": "min",
        "grace_period": 2,
        "min_samples_required": 3,
    }
    settings.update(kwargs)
    return MedianStoppingRule(**settings)


def run(rule: MedianStoppingRule, name: str, losses: list[float]) -> list[str]:
    """Report ``losses`` at iterations 1, 2, ...; return the decisions."""
    trial = make_trial(name)
    rule.on_trial_add(CONTROLLER, trial)
    decisions = []
    for t, value in enumerate(losses, start=1):
        result = {"training_iteration": t, "loss": value}
        decisions.append(rule.on_trial_result(CONTROLLER, trial, result))
    return decisions


def with_finished_trials(count: int, **kwargs) -> MedianStoppingRule:
    rule = make_rule(**kwargs)
    for index in range(count):
        assert run(rule, f"ok{index}", [1.0] * 5) == ["CONTINUE"] * 5
    return rule


def test_bad_trial_stops_right_after_grace_period():
    rule = with_finished_trials(3)
    assert run(rule, "bad", [5.0, 5.0, 5.0]) == ["CONTINUE", "STOP", "STOP"]


def test_good_trial_is_never_stopped():
    rule = with_finished_trials(3)
    assert run(rule, "good", [0.9] * 5) == ["CONTINUE"] * 5


def test_best_result_so_far_is_compared_not_the_latest():
    rule = with_finished_trials(3)
    assert run(rule, "spiky", [5.0, 0.5, 3.0, 3.0]) == ["CONTINUE"] * 4


def test_too_few_other_trials_means_no_stop():
    rule = with_finished_trials(2)
    assert run(rule, "bad", [5.0] * 4) == ["CONTINUE"] * 4


def test_only_trials_that_reached_the_same_time_count():
    rule = make_rule()
    for index in range(3):
        run(rule, f"short{index}", [1.0, 1.0])  # they stop at iteration 2
    assert run(rule, "bad", [5.0, 5.0, 5.0]) == ["CONTINUE", "STOP", "CONTINUE"]


def test_maximize_mode():
    rule = make_rule(metric="acc", mode="max")
    for index in range(3):
        trial = make_trial(f"ok{index}")
        for t in range(1, 4):
            result = {"training_iteration": t, "acc": 0.8}
            assert rule.on_trial_result(CONTROLLER, trial, result) == "CONTINUE"
    low, high = make_trial("low"), make_trial("high")
    result = {"training_iteration": 2, "acc": 0.1}
    assert rule.on_trial_result(CONTROLLER, low, result) == "STOP"
    result = {"training_iteration": 2, "acc": 0.9}
    assert rule.on_trial_result(CONTROLLER, high, result) == "CONTINUE"


def test_removed_trials_no_longer_count():
    rule = with_finished_trials(3)
    rule.on_trial_remove(CONTROLLER, make_trial("ok0"))
    assert run(rule, "bad", [5.0] * 3) == ["CONTINUE"] * 3


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"mode": "lowest"}, "mode="),
        ({"grace_period": -1}, "grace_period=-1"),
        ({"min_samples_required": 0}, "min_samples_required=0"),
        ({"min_samples_required": 2.5}, "min_samples_required=2.5"),
        ({"min_time_slice": -1}, "min_time_slice=-1"),
        ({"hard_stop": False}, "hard_stop=False"),
        ({"time_attr": None}, "time_attr=None"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(TuneConfigError) as info:
        make_rule(**kwargs)
    assert name in str(info.value)
    assert "MedianStoppingRule" in str(info.value)


def test_defaults_match_ray():
    rule = MedianStoppingRule()
    assert rule.time_attr == "time_total_s"
    assert rule.grace_period == 60.0
    assert rule.min_samples_required == 3
    with pytest.raises(TuneConfigError, match="TuneConfig"):
        rule.set_search_properties(None, None)
    rule.set_search_properties("loss", "min")
    assert (rule.metric, rule.mode) == ("loss", "min")


def test_result_without_metric_lists_the_keys_it_has():
    rule = make_rule()
    result = {"training_iteration": 1, "accuracy": 0.9, "time_total_s": 3.0}
    with pytest.raises(TuneConfigError) as info:
        rule.on_trial_result(CONTROLLER, make_trial("t0"), result)
    message = str(info.value)
    assert "'loss'" in message
    assert "['accuracy', 'time_total_s', 'training_iteration']" in message
