"""Schedulers and searchers on the head, seen from the client."""

from __future__ import annotations

import time

import pytest

import tune_client as tune
from tune_client.errors import TuneError


def curve(config):
    for step in range(1, 21):
        time.sleep(0.03)  # a step takes time, so the head's stop lands in time
        tune.report({"score": config["rate"] * step})


def test_asha_stops_slow_trials_and_keeps_the_best(storage):
    results = tune.Tuner(
        curve,
        param_space={"rate": tune.grid_search([5.0, 0.4, 0.3, 0.2, 0.1])},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=tune.schedulers.ASHAScheduler(
                max_t=20, grace_period=2, reduction_factor=3
            ),
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(verbose=0),
    ).fit()
    assert results.num_errors == 0
    iterations = {r.config["rate"]: r.metrics["training_iteration"] for r in results}
    # One trial at a time, in grid order. 5.0 is first at every rung (2, 6
    # and 18) and runs to max_t; each later trial falls below the rung-2
    # quantile of the values before it (10, then 0.8 and 10, ...) and stops
    # there (the stop reaches a trial a result or two late).
    assert iterations[5.0] == 20
    stopped_early = {rate for rate, done in iterations.items() if done < 20}
    assert stopped_early == {0.4, 0.3, 0.2, 0.1}, iterations
    assert results.get_best_result().config["rate"] == 5.0


class StopAllAfter(tune.stopper.Stopper):
    """Ends the experiment once it has been handed ``results`` results."""

    def __init__(self, results: int) -> None:
        self.results, self.seen = results, 0

    def __call__(self, trial_id, result):
        self.seen += 1
        return False

    def stop_all(self):
        return self.seen >= self.results


def long_curve(config):
    for step in range(1, 201):
        time.sleep(0.03)
        tune.report({"score": config["rate"] * step})


def test_a_stoppers_stop_all_ends_the_experiment(storage):
    # The first trial stops after 5 results; results past its 4th reach only
    # MaximumIterationStopper (the first to say stop decides), so StopAllAfter
    # counts 4 of them and ends the experiment at the second trial's 4th.
    stopper = tune.stopper.CombinedStopper(
        tune.stopper.MaximumIterationStopper(max_iter=5), StopAllAfter(results=8)
    )
    started = time.monotonic()
    results = tune.Tuner(
        long_curve,
        param_space={"rate": tune.grid_search([1.0, 2.0, 3.0])},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(stop=stopper, verbose=0),
    ).fit()
    assert time.monotonic() - started < 60
    assert results.num_errors == 0
    iterations = {r.config["rate"]: r.metrics["training_iteration"] for r in results}
    assert set(iterations) == {1.0, 2.0}, "the third trial started after stop_all"
    assert 5 <= iterations[1.0] < 200, iterations
    assert 4 <= iterations[2.0] < 200, iterations


def nested(config):
    for step in range(1, 51):
        tune.report({"val": {"score": step}})


def test_a_stop_dict_bounds_nested_metrics_named_with_slashes(storage):
    results = tune.Tuner(
        nested, run_config=tune.RunConfig(stop={"val/score": 3}, verbose=0)
    ).fit()
    assert results.num_errors == 0
    assert results[0].metrics["training_iteration"] == 3  # checked in the trial


def test_a_metric_no_trial_reports_fails_the_experiment_with_the_known_ones(storage):
    with pytest.raises(TuneError) as info:
        tune.Tuner(
            curve,
            param_space={"rate": 1.0},
            tune_config=tune.TuneConfig(
                metric="accuracy",
                mode="max",
                scheduler=tune.schedulers.ASHAScheduler(max_t=20),
            ),
            run_config=tune.RunConfig(verbose=0),
        ).fit()
    message = str(info.value)
    assert "accuracy" in message and "score" in message, message


def pbt_trainable(config):
    """Carries its lineage in the checkpoint: which trials' weights it holds.

    Ranked by its learning rate alone, so the ranking never depends on how
    far each trial has got: the 10.0 trial is always on top.
    """
    import os
    import pickle
    import tempfile

    state = {"weight": 0.0, "lineage": [tune.get_context().get_trial_id()]}
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.pkl"), "rb") as f:
                state = pickle.load(f)
        state["lineage"].append(tune.get_context().get_trial_id())
    for _ in range(12):
        time.sleep(0.05)
        state["weight"] += config["lr"]
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.pkl"), "wb") as f:
                pickle.dump(state, f)
            tune.report(
                {
                    "score": config["lr"],
                    "weight": state["weight"],
                    "lineage": state["lineage"],
                },
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


def test_pbt_copies_a_better_trials_checkpoint(storage):
    pbt = tune.schedulers.PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=3,
        hyperparam_mutations={"lr": [0.01, 0.1, 1.0, 10.0]},
        quantile_fraction=0.5,
        resample_probability=0.0,  # explore by perturbing only: 10.0 -> 1.0 or 10.0
        seed=0,
    )
    results = tune.Tuner(
        tune.with_resources(pbt_trainable, {"cpu": 0.5}),
        param_space={"lr": tune.grid_search([0.01, 10.0])},
        tune_config=tune.TuneConfig(metric="score", mode="max", scheduler=pbt),
        run_config=tune.RunConfig(verbose=0),
    ).fit()
    assert results.num_errors == 0
    weak, strong = sorted(results, key=lambda r: r.metrics["trial_id"])
    assert strong.metrics["lineage"] == [strong.metrics["trial_id"]]
    assert strong.config["lr"] == 10.0

    # The weak trial took the strong trial's weights, at least once.
    assert weak.metrics["lineage"] == [
        strong.metrics["trial_id"],
        weak.metrics["trial_id"],
    ]
    assert weak.config["lr"] in (1.0, 10.0)  # explored from the 10.0 donor
    assert weak.metrics["weight"] > 10.0 > 12 * 0.01
    iterations = weak.metrics_dataframe["training_iteration"].tolist()
    assert iterations == sorted(set(iterations))


def sampled(config):
    time.sleep(0.1)
    tune.report({"x": config["x"]})


class StopAfterTwo(tune.Callback):
    """Stops the experiment on the head, as `tune stop` does, after two trials.

    Tuner.restore brings callbacks back; this one fires only in the first run.
    """

    fired = False

    def __init__(self) -> None:
        self.completed = 0

    def on_trial_complete(self, iteration, trials, trial, **info):
        from tune_client import cluster

        self.completed += 1
        if self.completed == 2 and not StopAfterTwo.fired:
            StopAfterTwo.fired = True
            cluster.get_client().stop_experiment("searched")


def test_restore_continues_the_searchers_sequence(storage):
    space = {"x": tune.uniform(0, 1)}
    search = tune.search.BasicVariantGenerator(random_state=7)
    tune.Tuner(
        sampled,
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=8, search_alg=search, max_concurrent_trials=1
        ),
        run_config=tune.RunConfig(
            name="searched", callbacks=[StopAfterTwo()], verbose=0
        ),
    ).fit()
    path = storage / "searched"
    first = tune.Tuner.restore(str(path), sampled).get_results()
    finished_first = {r.config["x"] for r in first if r.metrics}
    assert 2 <= len(finished_first) < 8

    results = tune.Tuner.restore(str(path), sampled).fit()
    assert len(results) == 8 and results.num_errors == 0
    xs = [r.config["x"] for r in results]
    assert len(set(xs)) == 8, "a restored searcher repeated a config"
    assert finished_first <= set(xs)
    assert all(r.metrics["x"] == r.config["x"] for r in results)
