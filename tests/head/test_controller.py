"""The experiment controller as a state machine: events in, actions out."""

from __future__ import annotations

import copy
import json
import logging

import pytest

import tune_client as tune
from tune_client.config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from tune_client.experiment import ExperimentSpec
from tune_client.search import BasicVariantGenerator, ConcurrencyLimiter
from tune_client.stopper import CombinedStopper, MaximumIterationStopper, Stopper
from tune_head.controller import (
    DeleteCheckpointAction,
    ExperimentController,
    RewindResultsAction,
    SaveSearcherStateAction,
    StopTrialAction,
    TrialChanged,
)
from tune_head.trial import CheckpointRecord, TrialStatus


def make_controller(
    param_space=None, clock=None, trials=None, searcher_state=None, **configs
) -> ExperimentController:
    spec = ExperimentSpec(
        name="exp",
        trainable_name="train",
        trainable_object_id="0" * 64,
        object_ids=[],
        resources={"cpu": 1.0},
        param_space=param_space if param_space is not None else {},
        tune_config=configs.get("tune_config", TuneConfig()),
        run_config=configs.get("run_config", RunConfig()),
    )
    kwargs = {"clock": clock} if clock else {}
    return ExperimentController(
        "abcdef0123",
        spec,
        "/results/exp",
        trials=trials,
        searcher_state=searcher_state,
        **kwargs,
    )


def start_all(controller: ExperimentController) -> list:
    started = []
    while (trial := controller.next_trial_to_start()) is not None:
        controller.on_trial_started(trial, "w1")
        started.append(trial)
    return started


def result(iteration: int, **metrics) -> tuple[int, bytes]:
    """A result as the head gets it: its iteration, and its JSON."""
    payload = {"training_iteration": iteration, **metrics}
    return iteration, json.dumps(payload).encode()


def test_grid_times_num_samples_creates_every_trial_then_finishes():
    controller = make_controller(
        {"a": tune.grid_search([1, 2, 3]), "b": tune.uniform(0, 1)},
        tune_config=TuneConfig(num_samples=2),
    )
    trials = start_all(controller)
    assert [t.config["a"] for t in trials] == [1, 2, 3, 1, 2, 3]
    assert all(0 <= t.config["b"] <= 1 for t in trials)
    assert trials[0].trial_id == "abcde_00000"
    assert trials[0].path.startswith("/results/exp/train_abcde_00000_0_")
    assert not controller.is_finished()
    for trial in trials:
        controller.on_trial_ended(trial, "finished", "")
    assert controller.is_finished()
    assert controller.counts_by_status() == {"TERMINATED": 6}


def test_repeated_iteration_is_dropped():
    controller = make_controller()
    (trial,) = start_all(controller)
    assert controller.on_result(trial, *result(1, loss=3.0))
    assert controller.on_result(trial, *result(2, loss=2.0))
    assert not controller.on_result(trial, *result(2, loss=9.0))
    assert trial.last_result["loss"] == 2.0


def test_results_are_read_only_when_something_looks_at_each_one():
    """Unread results are kept as JSON; the latest still reads back whole."""
    plain = make_controller()
    assert not plain.reads_every_result
    (trial,) = start_all(plain)
    plain.on_result(trial, *result(1, loss=3.0))
    plain.on_result(trial, *result(2, loss=2.0))
    assert trial.last_result == {"training_iteration": 2, "loss": 2.0}
    stopped = make_controller(run_config=RunConfig(stop={"loss": 0.1}))
    limiter = ConcurrencyLimiter(BasicVariantGenerator(), 2)
    limited = make_controller(tune_config=TuneConfig(search_alg=limiter))
    asha = make_controller(
        tune_config=TuneConfig(
            scheduler=tune.schedulers.ASHAScheduler(), metric="loss", mode="min"
        )
    )
    assert stopped.reads_every_result
    assert limited.reads_every_result
    assert asha.reads_every_result


def test_stop_dict_stops_the_trial_with_the_reason():
    controller = make_controller(run_config=RunConfig(stop={"training_iteration": 3}))
    (trial,) = start_all(controller)
    controller.take_actions()
    for i in (1, 2):
        controller.on_result(trial, *result(i))
    assert controller.take_actions() == []
    controller.on_result(trial, *result(3))
    (action,) = controller.take_actions()
    assert isinstance(action, StopTrialAction)
    assert "training_iteration=3" in action.reason


def test_failure_retries_from_latest_checkpoint_then_errors():
    controller = make_controller(
        run_config=RunConfig(failure_config=FailureConfig(max_failures=1))
    )
    (trial,) = start_all(controller)
    checkpoint = CheckpointRecord("checkpoint_000000", "/p/checkpoint_000000", 1, {})
    controller.on_checkpoint(trial, checkpoint)

    controller.on_trial_ended(trial, "errored", "Traceback...\nValueError: boom")
    assert trial.status is TrialStatus.PENDING and trial.num_failures == 1
    assert controller.next_trial_to_start() is trial
    assert trial.latest_checkpoint is checkpoint

    controller.on_trial_started(trial, "w2")
    controller.on_trial_ended(trial, "errored", "Traceback...\nValueError: boom")
    assert trial.status is TrialStatus.ERROR
    assert "ValueError: boom" in trial.error
    assert controller.is_finished()


def test_interrupted_trial_runs_again_without_counting_a_failure():
    controller = make_controller()
    (trial,) = start_all(controller)
    controller.on_trial_ended(trial, "interrupted", "")
    assert trial.status is TrialStatus.PENDING and trial.num_failures == 0


def test_lost_worker_fails_only_its_trials():
    controller = make_controller(
        {"a": tune.grid_search([1, 2])},
        run_config=RunConfig(failure_config=FailureConfig(max_failures=3)),
    )
    first = controller.next_trial_to_start()
    controller.on_trial_started(first, "lost-worker")
    second = controller.next_trial_to_start()
    controller.on_trial_started(second, "healthy-worker")
    controller.on_worker_lost("lost-worker")
    assert first.status is TrialStatus.PENDING and first.num_failures == 1
    assert second.status is TrialStatus.RUNNING


def test_fail_fast_stops_the_others():
    controller = make_controller(
        {"a": tune.grid_search([1, 2])},
        run_config=RunConfig(failure_config=FailureConfig(fail_fast=True)),
    )
    failing, other = start_all(controller)
    controller.take_actions()
    controller.on_trial_ended(failing, "errored", "boom")
    stops = [a for a in controller.take_actions() if isinstance(a, StopTrialAction)]
    assert [a.trial for a in stops] == [other]
    assert controller.next_trial_to_start() is None


def test_time_budget_stops_running_trials():
    now = [1000.0]
    controller = make_controller(
        clock=lambda: now[0], tune_config=TuneConfig(time_budget_s=10)
    )
    (trial,) = start_all(controller)
    controller.take_actions()
    now[0] += 5
    controller.on_tick()
    assert controller.take_actions() == []
    now[0] += 6
    controller.on_tick()
    (action,) = controller.take_actions()
    assert isinstance(action, StopTrialAction) and "time budget" in action.reason


def test_max_concurrent_trials_limits_running_trials():
    controller = make_controller(
        {"a": tune.grid_search([1, 2, 3])},
        tune_config=TuneConfig(max_concurrent_trials=2),
    )
    assert len(start_all(controller)) == 2


def test_num_to_keep_deletes_the_oldest_checkpoint():
    controller = make_controller(
        run_config=RunConfig(checkpoint_config=CheckpointConfig(num_to_keep=2))
    )
    (trial,) = start_all(controller)
    controller.take_actions()
    records = [
        CheckpointRecord(f"checkpoint_00000{i}", f"/p/{i}", i + 1, {}) for i in range(3)
    ]
    for record in records:
        controller.on_checkpoint(trial, record)
    deleted = [
        a.checkpoint
        for a in controller.take_actions()
        if isinstance(a, DeleteCheckpointAction)
    ]
    assert deleted == [records[0]]
    assert trial.checkpoints == records[1:]
    assert trial.next_checkpoint_index == 3


def test_every_trial_change_is_announced():
    controller = make_controller()
    (trial,) = start_all(controller)
    changes = [a for a in controller.take_actions() if isinstance(a, TrialChanged)]
    assert [c.trial for c in changes] == [trial, trial]


def test_bad_mode_fails_at_once():
    with pytest.raises(ValueError, match='"min" or mode="max"'):
        TuneConfig(mode="maximize")


def test_restart_rewinds_the_log_to_the_checkpoint():
    controller = make_controller(
        run_config=RunConfig(failure_config=FailureConfig(max_failures=1))
    )
    (trial,) = start_all(controller)
    for i in (1, 2, 3):
        controller.on_result(trial, *result(i, attempt=1))
    controller.on_checkpoint(trial, CheckpointRecord("checkpoint_000000", "/c", 1, {}))
    controller.on_trial_ended(trial, "errored", "boom")
    controller.take_actions()

    controller.on_trial_started(trial, "w1")
    rewinds = [
        a for a in controller.take_actions() if isinstance(a, RewindResultsAction)
    ]
    assert [(a.trial, a.iteration) for a in rewinds] == [(trial, 1)]
    assert controller.on_result(trial, *result(2, attempt=2))
    assert trial.last_result["attempt"] == 2


def stops(controller: ExperimentController) -> list:
    return [a for a in controller.take_actions() if isinstance(a, StopTrialAction)]


class StopAllAfter(Stopper):
    """Stops trials whose loss falls below 1; the experiment after n results."""

    def __init__(self, results: int) -> None:
        self.results, self.seen = results, 0

    def __call__(self, trial_id, result):
        self.seen += 1
        return result["loss"] < 1

    def stop_all(self):
        return self.seen >= self.results


def test_a_stopper_stops_one_trial_then_the_whole_experiment():
    controller = make_controller(
        {"a": tune.grid_search([1, 2, 3])},
        tune_config=TuneConfig(max_concurrent_trials=2),
        run_config=RunConfig(stop=StopAllAfter(results=3)),
    )
    first, second = start_all(controller)
    controller.take_actions()
    controller.on_result(first, *result(1, loss=0.5))
    [stop] = stops(controller)
    assert stop.trial is first and "StopAllAfter" in stop.reason
    controller.on_trial_ended(first, "finished", "")

    controller.on_result(second, *result(1, loss=5.0))
    assert stops(controller) == []
    controller.on_result(second, *result(2, loss=5.0))  # the third result
    [stop] = stops(controller)
    assert stop.trial is second and "stop_all() returned True" in stop.reason
    assert controller.next_trial_to_start() is None, "no trial starts after it"
    controller.on_trial_ended(second, "stopped", "")
    assert controller.is_finished()
    assert controller.counts_by_status() == {"TERMINATED": 2}


def test_stop_all_is_asked_on_the_tick_too():
    class Switch(Stopper):
        on = False

        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            return Switch.on

    controller = make_controller(run_config=RunConfig(stop=Switch()))
    (trial,) = start_all(controller)
    controller.take_actions()
    controller.on_tick()
    assert stops(controller) == []
    Switch.on = True
    controller.on_tick()
    [stop] = stops(controller)
    assert stop.trial is trial and "Switch.stop_all()" in stop.reason


def test_a_combined_stopper_and_a_plain_function_both_apply():
    controller = make_controller(
        run_config=RunConfig(
            stop=CombinedStopper(MaximumIterationStopper(2), StopAllAfter(99))
        )
    )
    (trial,) = start_all(controller)
    controller.take_actions()
    controller.on_result(trial, *result(1, loss=5.0))
    assert stops(controller) == []
    controller.on_result(trial, *result(2, loss=5.0))
    [stop] = stops(controller)
    assert "CombinedStopper" in stop.reason

    controller = make_controller(
        run_config=RunConfig(stop=lambda trial_id, result: result["loss"] < 1)
    )
    (trial,) = start_all(controller)
    controller.take_actions()
    controller.on_result(trial, *result(1, loss=0.5))
    [stop] = stops(controller)
    assert stop.reason == "the stop function returned True"


def test_a_stopper_whose_stop_all_raises_fails_the_experiment():
    class Broken(Stopper):
        def __call__(self, trial_id, result):
            return False

        def stop_all(self):
            raise RuntimeError("no budget file")

    controller = make_controller(run_config=RunConfig(stop=Broken()))
    (trial,) = start_all(controller)
    controller.take_actions()
    controller.on_tick()
    assert "no budget file" in controller.error
    assert [a.trial for a in stops(controller)] == [trial]


def test_stop_dict_names_nested_metrics_with_slashes():
    controller = make_controller(run_config=RunConfig(stop={"val/acc": 0.9}))
    (trial,) = start_all(controller)
    controller.take_actions()
    controller.on_result(trial, *result(1, val={"acc": 0.5}))
    assert stops(controller) == []
    controller.on_result(trial, *result(2, val={"acc": 0.95}))
    [stop] = stops(controller)
    assert stop.reason == "val/acc=0.95 reached the stop value 0.9"


def test_a_stop_key_no_result_has_is_skipped_with_one_warning(caplog):
    # Ray Tune 2.60 warns once and runs on: a metric may appear only later.
    controller = make_controller(
        {"a": tune.grid_search([1, 2])},
        run_config=RunConfig(stop={"acuracy": 0.9, "training_iteration": 3}),
    )
    trials = start_all(controller)
    controller.take_actions()
    with caplog.at_level(logging.WARNING, logger="tune_head.controller"):
        for trial in trials:
            controller.on_result(trial, *result(1, accuracy=0.95))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "['acuracy']" in warnings[0] and "'accuracy'" in warnings[0]
    assert stops(controller) == [] and controller.error == ""
    controller.on_result(trials[0], *result(3, accuracy=0.95))
    [stop] = stops(controller)
    assert "training_iteration=3" in stop.reason


def checkpoints_with(controller, trial, scores: list, attribute: str = "acc"):
    records = [
        CheckpointRecord(
            f"checkpoint_{i:06d}",
            f"/p/{i}",
            i + 1,
            {} if score is None else {attribute: score},
        )
        for i, score in enumerate(scores)
    ]
    for record in records:
        controller.on_checkpoint(trial, record)
    return records


def deleted_by(controller) -> list:
    return [
        a.checkpoint
        for a in controller.take_actions()
        if isinstance(a, DeleteCheckpointAction)
    ]


@pytest.mark.parametrize(
    "order, scores, kept",
    [
        # The two best (0.9 and 0.8) stay, and the latest one besides.
        ("max", [0.5, 0.9, 0.8, 0.1, 0.3], [1, 2, 4]),
        ("min", [0.5, 0.9, 0.1, 0.8], [0, 2, 3]),
        # The latest is among the best: exactly num_to_keep remain.
        ("max", [0.1, 0.2, 0.3], [1, 2]),
        # A tie goes to the more recent checkpoint.
        ("max", [0.7, 0.7, 0.7, 0.1], [1, 2, 3]),
    ],
)
def test_num_to_keep_keeps_the_best_and_the_latest(order, scores, kept):
    config = CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute="acc", checkpoint_score_order=order
    )
    controller = make_controller(run_config=RunConfig(checkpoint_config=config))
    (trial,) = start_all(controller)
    controller.take_actions()
    records = checkpoints_with(controller, trial, scores)
    assert trial.checkpoints == [records[i] for i in kept]
    assert sorted(deleted_by(controller), key=records.index) == [
        r for i, r in enumerate(records) if i not in kept
    ]


def test_a_checkpoint_without_the_score_attribute_ranks_below_the_scored(caplog):
    config = CheckpointConfig(
        num_to_keep=1, checkpoint_score_attribute="acc", checkpoint_score_order="min"
    )
    controller = make_controller(run_config=RunConfig(checkpoint_config=config))
    (trial,) = start_all(controller)
    controller.take_actions()
    with caplog.at_level(logging.ERROR, logger="tune_head.controller"):
        records = checkpoints_with(controller, trial, [None, 5.0, None, 9.0])
    # Not a score of 0 (which "min" would keep as the best): the worst.
    assert trial.checkpoints == [records[1], records[3]]
    [message] = [r.getMessage() for r in caplog.records]
    assert (
        "checkpoint_score_attribute='acc'" in message and "checkpoint_000000" in message
    )


def test_without_a_score_attribute_the_most_recent_are_kept():
    config = CheckpointConfig(num_to_keep=3)
    controller = make_controller(run_config=RunConfig(checkpoint_config=config))
    (trial,) = start_all(controller)
    records = checkpoints_with(controller, trial, [0.9, 0.1, 0.2, 0.3, 0.4])
    assert trial.checkpoints == records[2:]


def test_the_searcher_is_told_when_a_trial_ends_so_its_state_is_saved():
    controller = make_controller({"a": tune.grid_search([1, 2])})
    first, second = start_all(controller)
    controller.take_actions()
    controller.on_trial_ended(first, "finished", "")
    actions = controller.take_actions()
    assert any(isinstance(a, SaveSearcherStateAction) for a in actions)
    controller.on_trial_ended(second, "errored", "boom")
    assert any(
        isinstance(a, SaveSearcherStateAction) for a in controller.take_actions()
    )


@pytest.mark.parametrize(
    "make_searcher",
    [
        lambda: ConcurrencyLimiter(BasicVariantGenerator(random_state=1), 1),
        lambda: BasicVariantGenerator(max_concurrent=1, random_state=1),
    ],
    ids=["ConcurrencyLimiter", "max_concurrent"],
)
@pytest.mark.parametrize("outcome", ["finished", "errored"])
def test_restore_frees_the_slots_of_trials_that_ended_after_the_state(
    make_searcher, outcome
):
    space = {"a": tune.grid_search([1, 2, 3])}
    before = make_controller(space, tune_config=TuneConfig(search_alg=make_searcher()))
    (first,) = start_all(before)
    saved = copy.deepcopy(before.searcher.get_state())  # written at creation
    before.on_result(first, *result(1, loss=0.5))
    before.on_trial_ended(first, "errored" if outcome == "errored" else "finished", "")
    assert first.status.is_finished

    restored = make_controller(
        space,
        trials=[copy.deepcopy(first)],
        searcher_state=saved,
        tune_config=TuneConfig(search_alg=make_searcher()),
    )
    assert first.trial_id not in restored.searcher.live_trials
    assert any(isinstance(a, SaveSearcherStateAction) for a in restored.take_actions())
    started = start_all(restored)
    assert [t.config["a"] for t in started] == [2], "the slot stayed taken"


def test_restore_tells_the_wrapped_searcher_of_the_missed_result_once():
    class Recording(BasicVariantGenerator):
        def __init__(self):
            super().__init__(random_state=1)
            self.completed = []

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.completed.append((trial_id, (result or {}).get("loss"), error))
            super().on_trial_complete(trial_id, result, error)

    before = make_controller(
        {"a": tune.grid_search([1, 2])},
        tune_config=TuneConfig(search_alg=ConcurrencyLimiter(Recording(), 2)),
    )
    first, second = start_all(before)
    saved = copy.deepcopy(before.searcher.get_state())
    before.on_result(first, *result(1, loss=0.25))
    before.on_trial_ended(first, "finished", "")

    inner = Recording()
    restored = make_controller(
        {"a": tune.grid_search([1, 2])},
        trials=[copy.deepcopy(first), copy.deepcopy(second)],
        searcher_state=saved,
        tune_config=TuneConfig(search_alg=ConcurrencyLimiter(inner, 2)),
    )
    assert inner.completed == [(first.trial_id, 0.25, False)]
    assert restored.searcher.live_trials == {second.trial_id}
