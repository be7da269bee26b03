"""Trials go only where their resources are, and `tune status` says why a
trial waits when no single worker has room for it."""

from __future__ import annotations

import threading
import time

import tune_client as tune
from tests.conftest import wait_for
from tests.integration.operator_cli import head_log, tune_cli, tune_status


def timed(config):
    began = time.time()
    time.sleep(0.5)
    tune.report({"began": began, "ended": time.time()})


def test_custom_resources_place_trials_only_where_they_are(daemons, connect, tmp_path):
    daemons.start_head()
    daemons.start_worker(
        "--worker-id", "big", "--node-ip", "127.0.0.2", "--resources", '{"highmem": 1}'
    )
    daemons.start_worker("--worker-id", "plain", "--node-ip", "127.0.0.3")
    client = connect(daemons)
    wait_for(lambda: len(client.status().workers) == 2, 20, "both workers")

    results = tune.Tuner(
        tune.with_resources(timed, {"cpu": 1, "highmem": 1}),
        param_space={"x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()

    assert results.num_errors == 0, results.errors
    assert [r.metrics["node_ip"] for r in results] == ["127.0.0.2"] * 2
    first, second = sorted((r.metrics for r in results), key=lambda m: m["began"])
    assert first["ended"] <= second["began"], "both highmem trials ran at once"
    log = head_log(daemons)
    assert log.count("placed on worker big") == 2, log
    assert "placed on worker plain" not in log, log


def hold(config):
    """Run until the experiment is stopped (at most a minute)."""
    for step in range(600):
        time.sleep(0.1)
        tune.report({"step": step})


def _fit_in_thread(trainable, name: str, tmp_path) -> threading.Thread:
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1, 2])} if name == "busy" else {},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "out"), name=name, verbose=0
        ),
    )
    thread = threading.Thread(target=tuner.fit, daemon=True)
    thread.start()
    return thread


def test_status_says_no_worker_has_the_cpus_a_trial_waits_for(
    daemons, connect, tmp_path
):
    # Each worker has one "slot", so the two busy trials land one per worker
    # and leave each with 1 of its 2 CPUs free: 2 CPUs free in all, but not
    # on any one worker.
    daemons.start_head()
    for worker_id in ("a", "b"):
        daemons.start_worker("--worker-id", worker_id, "--resources", '{"slot": 1}')
    client = connect(daemons)
    wait_for(lambda: len(client.status().workers) == 2, 20, "both workers")
    busy = _fit_in_thread(
        tune.with_resources(hold, {"cpu": 1, "slot": 1}), "busy", tmp_path
    )
    wait_for(
        lambda: tune_status(daemons).count("1 trials running") == 2,
        20,
        "one busy trial on each worker",
    )
    wide = _fit_in_thread(tune.with_resources(hold, {"cpu": 2}), "wide", tmp_path)

    shown = wait_for(
        lambda: "pending trials wait" in (out := tune_status(daemons)) and out,
        20,
        "the wide experiment's trial to wait",
    )
    assert "wide [running] 1 PENDING" in shown, shown
    assert "pending trials wait: no worker has 2 cpu free" in shown, shown
    assert "big enough" not in shown, shown
    for name in ("wide", "busy"):
        stopped = tune_cli(daemons, "stop", name)
        assert stopped.returncode == 0, stopped.stderr
    for thread in (wide, busy):
        thread.join(timeout=30)
        assert not thread.is_alive(), "fit() did not return after tune stop"
