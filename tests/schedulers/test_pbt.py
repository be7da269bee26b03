"""PopulationBasedTraining fed results by hand, with no servers."""

from __future__ import annotations

import pytest

from tune_client.errors import TuneConfigError
from tune_client.schedulers import PopulationBasedTraining
from tune_head.trial import CheckpointRecord, Trial


class RecordingController:
    """The two things PBT uses of the head's controller, recording exploits."""

    def __init__(self, trials: list[Trial]) -> None:
        self.trials = {trial.trial_id: trial for trial in trials}
        self.exploits: list[tuple[str, str, dict]] = []

    def exploit(self, trial: Trial, source: Trial, new_config: dict) -> bool:
        self.exploits.append((trial.trial_id, source.trial_id, new_config))
        trial.config = new_config
        return True


def make_trials(lrs: list[float]) -> list[Trial]:
    trials = []
    for index, lr in enumerate(lrs):
        trial = Trial(f"t{index}", f"t{index}", f"t{index}", "/r", {"lr": lr}, {})
        trial.checkpoints.append(CheckpointRecord("checkpoint_000000", "/r", 1, {}))
        trials.append(trial)
    return trials


def report_round(scheduler, controller, trials, iteration: int) -> None:
    for trial in trials:
        result = {"training_iteration": iteration, "score": trial.config["lr"]}
        scheduler.on_trial_result(controller, trial, result)


def make_pbt(**overrides) -> PopulationBasedTraining:
    options = dict(
        time_attr="training_iteration",
        metric="score",
        mode="max",
        perturbation_interval=2,
        hyperparam_mutations={"lr": [0.01, 0.1, 1.0, 10.0]},
        resample_probability=0.0,
        seed=0,
    )
    options.update(overrides)
    return PopulationBasedTraining(**options)


def test_the_worst_trial_takes_the_best_trials_checkpoint_and_perturbs_it():
    trials = make_trials([0.01, 1.0, 10.0])
    controller = RecordingController(trials)
    scheduler = make_pbt(quantile_fraction=0.25)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)

    report_round(scheduler, controller, trials, 1)
    assert controller.exploits == []  # not due before perturbation_interval

    report_round(scheduler, controller, trials, 2)
    # Three trials and a quarter: the quantile rounds up to one trial, as in
    # Ray Tune, instead of down to none.
    [(heir, donor, new_config)] = controller.exploits
    assert (heir, donor) == ("t0", "t2")
    assert new_config["lr"] in (1.0, 10.0)  # a neighbour of 10.0 in the list


def test_no_trial_is_in_both_halves_of_a_population_of_two():
    trials = make_trials([0.01, 10.0])
    controller = RecordingController(trials)
    scheduler = make_pbt(quantile_fraction=0.5)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    for iteration in range(1, 9):
        report_round(scheduler, controller, trials, iteration)
    assert controller.exploits
    assert all(donor == "t1" for _, donor, _ in controller.exploits)


def test_a_lone_trial_is_never_exploited():
    trials = make_trials([0.01])
    controller = RecordingController(trials)
    scheduler = make_pbt(quantile_fraction=0.5)
    scheduler.on_trial_add(controller, trials[0])
    for iteration in range(1, 9):
        report_round(scheduler, controller, trials, iteration)
    assert controller.exploits == []


def test_quantile_fraction_outside_the_open_half_is_refused():
    with pytest.raises(TuneConfigError, match="quantile_fraction"):
        make_pbt(quantile_fraction=0.75)


@pytest.mark.parametrize("metric, mode", [(None, None), ("score", None), (None, "max")])
def test_a_missing_metric_or_mode_fails_at_setup_naming_both_places(metric, mode):
    pbt = make_pbt(metric=None, mode=None)
    with pytest.raises(TuneConfigError) as info:
        pbt.set_search_properties(metric, mode)
    message = str(info.value)
    assert "PopulationBasedTraining" in message and "TuneConfig" in message
    assert "needs a metric and a mode" in message


def test_metric_and_mode_come_from_tune_config_unless_given():
    pbt = make_pbt(metric=None, mode=None)
    assert pbt.set_search_properties("score", "max")
    assert (pbt.metric, pbt.mode) == ("score", "max")
    own = make_pbt(metric="acc", mode="min")
    own.set_search_properties("score", "max")
    assert (own.metric, own.mode) == ("acc", "min")


def test_tune_config_refuses_a_pbt_without_metric_before_submitting():
    from tune_client.config import TuneConfig

    with pytest.raises(TuneConfigError, match="PopulationBasedTraining needs"):
        TuneConfig(scheduler=make_pbt(metric=None, mode=None))
    pbt = make_pbt(metric=None, mode=None)
    TuneConfig(metric="score", mode="max", scheduler=pbt)
    assert pbt.metric is None, "the check must not change the user's scheduler"
