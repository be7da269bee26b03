"""The client's callbacks fed head events by hand, with no servers."""

from __future__ import annotations

import json
import logging
import sys

import cloudpickle
import pytest

import tune_client as tune
from proto.generated import tune_pb2
from tune_client.callback import Callback, setup_arguments
from tune_client.experiment_run import ExperimentRun

HOOKS = (
    "on_step_begin",
    "on_step_end",
    "on_trial_start",
    "on_trial_restore",
    "on_trial_save",
    "on_trial_result",
    "on_trial_complete",
    "on_trial_recover",
    "on_trial_error",
    "on_checkpoint",
)


class Recorder(Callback):
    """Every hook call as (hook, iteration, trial name or None)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        for hook in HOOKS:
            setattr(self, hook, self._recording(hook))

    def _recording(self, hook: str):
        def record(iteration, trials, trial=None, **info):
            self.calls.append((hook, iteration, trial and trial.trial_name))

        return record

    def on_experiment_end(self, trials, **info):
        self.calls.append(("on_experiment_end", None, None))

    def hooks(self, *skip: str) -> list[str]:
        return [hook for hook, _, _ in self.calls if hook not in skip]


def updated(
    status: str, failures: int = 0, name: str = "t0"
) -> tune_pb2.ExperimentEvent:
    info = tune_pb2.TrialInfo(
        trial_id=name,
        trial_name=name,
        status=tune_pb2.TrialStatus.Value(status),
        config_pickle=cloudpickle.dumps({"x": 1}),
        path=f"/r/{name}",
        num_failures=failures,
    )
    return tune_pb2.ExperimentEvent(trial_updated=info)


def result(iteration: int, name: str = "t0", **metrics) -> tune_pb2.ExperimentEvent:
    payload = {"training_iteration": iteration, **metrics}
    message = tune_pb2.TrialResult(
        trial_id=name, metrics_json=json.dumps(payload).encode()
    )
    return tune_pb2.ExperimentEvent(result=message)


def checkpoint(index: int, name: str = "t0") -> tune_pb2.ExperimentEvent:
    message = tune_pb2.CheckpointPersisted(
        trial_id=name,
        dir_name=f"checkpoint_{index:06d}",
        path=f"/r/{name}/checkpoint_{index:06d}",
        training_iteration=index + 1,
    )
    return tune_pb2.ExperimentEvent(checkpoint=message)


def ended() -> tune_pb2.ExperimentEvent:
    return tune_pb2.ExperimentEvent(experiment_ended=tune_pb2.ExperimentEnded())


def follow(*batches, stop=None) -> Recorder:
    recorder = Recorder()
    run = ExperimentRun(None, "exp", [recorder], reporter=None, stop=stop)
    for batch in batches:
        run._handle_step(list(batch))
    return recorder


def test_each_batch_is_one_step_and_the_experiment_end_comes_last():
    recorder = follow(
        [updated("PENDING"), updated("RUNNING"), result(1)],
        [result(2), updated("TERMINATED"), ended()],
    )
    assert recorder.calls == [
        ("on_step_begin", 0, None),
        ("on_trial_start", 0, "t0"),
        ("on_trial_result", 0, "t0"),
        ("on_step_end", 1, None),
        ("on_step_begin", 1, None),
        ("on_trial_result", 1, "t0"),
        ("on_trial_complete", 1, "t0"),
        ("on_step_end", 2, None),
        ("on_experiment_end", None, None),
    ]


def test_a_persisted_checkpoint_is_saved_once_even_when_replayed():
    replay = checkpoint(0)
    replay.replayed = True
    recorder = follow(
        [updated("RUNNING"), result(1), checkpoint(0)], [replay, checkpoint(1)]
    )
    steps = ("on_step_begin", "on_step_end")
    assert recorder.hooks(*steps) == [
        "on_trial_start",
        "on_trial_result",
        "on_checkpoint",
        "on_trial_save",
        "on_checkpoint",
        "on_trial_save",
    ]


def test_recover_fires_only_when_a_failed_trial_will_run_again():
    recorder = follow(
        [updated("RUNNING")],
        [updated("PENDING", failures=0)],  # PBT restarts it, or a person stops it
        [updated("RUNNING")],
        [updated("PENDING", failures=1)],  # it failed; max_failures allows more
        [updated("RUNNING", failures=1)],
        [updated("ERROR", failures=2)],  # failed for good
    )
    assert recorder.hooks("on_step_begin", "on_step_end") == [
        "on_trial_start",
        "on_trial_start",
        "on_trial_recover",
        "on_trial_restore",
        "on_trial_error",
    ]


def test_a_stop_key_results_lack_is_warned_about_once(caplog):
    with caplog.at_level(logging.WARNING, logger="tune_client.experiment_run"):
        follow(
            [updated("RUNNING"), result(1, acc=0.5), result(2, acc=0.6)],
            stop={"accuracy": 0.9, "acc": 0.95},
        )
    [message] = [r.getMessage() for r in caplog.records]
    assert "['accuracy']" in message and "'acc'" in message


def test_setup_counts_grid_points_times_num_samples():
    space = {"a": tune.grid_search([1, 2, 3]), "b": tune.uniform(0, 1)}
    arguments = setup_arguments(
        tune.TuneConfig(num_samples=2), tune.RunConfig(stop={"x": 1}), space
    )
    assert arguments == {
        "stop": {"x": 1},
        "num_samples": 2,
        "time_budget_s": None,
        "total_num_samples": 6,
    }
    points = tune.search.BasicVariantGenerator(points_to_evaluate=[{"a": 1}])
    with_points = tune.TuneConfig(num_samples=2, search_alg=points)
    assert (
        setup_arguments(with_points, tune.RunConfig(), space)["total_num_samples"]
        == 1 + 3
    )
    assert points.total_samples == 0, "the user's searcher is left untouched"


@pytest.mark.parametrize(
    "tune_config, total",
    [
        (tune.TuneConfig(num_samples=-1), sys.maxsize),
        (
            tune.TuneConfig(
                num_samples=4,
                search_alg=tune.search.ConcurrencyLimiter(
                    tune.search.BasicVariantGenerator(), 2
                ),
            ),
            8,
        ),
        (
            tune.TuneConfig(
                num_samples=4,
                search_alg=tune.search.Searcher(),
            ),
            4,
        ),
    ],
)
def test_setup_totals_for_endless_runs_and_wrapped_or_other_searchers(
    tune_config, total
):
    space = {"a": tune.grid_search([1, 2])}
    assert (
        setup_arguments(tune_config, tune.RunConfig(), space)["total_num_samples"]
        == total
    )
