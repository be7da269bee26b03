"""A head restarted on the same storage takes its experiments back; workers
re-attach the trials that kept running, and the client waits it out."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import tune_client as tune
from tests.conftest import wait_for
from tune_client import cluster

ITERATIONS = 25
WEIGHTS = np.arange(300_000, dtype=np.float64)  # over the inline limit: an object
WEIGHTS_SUM = float(WEIGHTS.sum())


def steady(config, weights):
    with open(os.path.join(config["marks"], f"{os.getpid()}.start"), "w") as f:
        f.write(tune.get_context().get_trial_id())
    assert weights.sum() == WEIGHTS_SUM  # from the store, also after a restart
    for _ in range(ITERATIONS):
        time.sleep(0.12)
        tune.report({"pid": os.getpid()})


class CountResults(tune.Callback):
    """Every (trial, iteration) the client's callbacks were handed."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen.append((trial.trial_id, result["training_iteration"]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_head_restart_keeps_running_trials(daemons, tmp_path, monkeypatch, how):
    port = _free_port()
    head_args = ("--state-dir", str(tmp_path / "state"), "--heartbeat-timeout", "10")
    daemons.start_head(*head_args, port=port)
    daemons.start_worker(cpus=2)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setattr(cluster, "_client", None)
    tune.init(daemons.address, token=daemons.token)
    outcome: dict = {}
    counter = CountResults()

    def run() -> None:
        try:
            outcome["results"] = tune.Tuner(
                tune.with_parameters(steady, weights=WEIGHTS),
                # Two run at once; the third starts only after the restart.
                param_space={"marks": str(marks), "x": tune.grid_search([1, 2, 3])},
                run_config=tune.RunConfig(
                    storage_path=str(tmp_path / "results"),
                    name="steady",
                    callbacks=[counter],
                    verbose=0,
                ),
            ).fit()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    client = threading.Thread(target=run, daemon=True)
    client.start()
    try:
        wait_for(lambda: len(list(marks.iterdir())) == 2, 30, "both trials to start")
        time.sleep(0.5)
        head = daemons.processes[0]
        head.send_signal(how)
        head.wait(timeout=20)
        time.sleep(1.0)  # trials keep reporting while the head is away
        daemons.start_head(*head_args, port=port)
        client.join(timeout=90)
    finally:
        tune.init(None)
    assert not client.is_alive(), "fit() did not return after the head came back"
    assert "error" not in outcome, outcome.get("error")
    results = outcome["results"]
    assert len(results) == 3 and results.num_errors == 0, results.errors
    started = [mark.read_text() for mark in marks.iterdir()]
    assert len(started) == len(set(started)) == 3, "a trial was restarted"
    for result in results:
        lines = (Path(result.path) / "result.json").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert [r["training_iteration"] for r in rows] == list(range(1, ITERATIONS + 1))
        assert len({r["pid"] for r in rows}) == 1
    assert len(counter.seen) == len(set(counter.seen)), "a result reached a hook twice"
    every_result = {
        (r.metrics["trial_id"], i) for r in results for i in range(1, ITERATIONS + 1)
    }
    assert set(counter.seen) == every_result, "a result never reached the hooks"
