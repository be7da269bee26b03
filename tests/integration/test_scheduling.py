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
    iterations = {r.config["rate"]: r.metrics["training_iteration"] for r in results}
    assert iterations[5.0] == 20
    assert min(iterations.values()) < 20, iterations
    assert results.get_best_result().config["rate"] == 5.0


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
