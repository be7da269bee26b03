"""What operators do to a running cluster: drain, metrics, GPUs, code shipping,
and clients that leave and come back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import tune_client as tune
from tests.conftest import REPO, daemon_env, wait_for
from tests.integration.operator_cli import free_port, tune_cli

# A worker told to stop gives its trials STOP_GRACE_S (5 s) to end, then waits
# for their uploads; a trial that checkpoints every 0.1 s ends far sooner.
WORKER_STOP_S = 15


def slow_steps(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int(Path(folder, "step").read_text()) + 1
    for step in range(start, config["steps"]):
        time.sleep(0.1)
        folder = Path(f"ckpt-{step}")
        folder.mkdir()
        (folder / "step").write_text(str(step))
        tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(folder))


def _fit_in_thread(
    run_config: tune.RunConfig, trainable=slow_steps, **kwargs
) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["results"] = tune.Tuner(
                trainable, run_config=run_config, **kwargs
            ).fit()
        except Exception as exc:  # noqa: BLE001 - asserted by the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.slow
def test_drain_moves_trials_and_the_worker_exits(daemons, connect, tmp_path):
    daemons.start_head()
    first = daemons.start_worker("--worker-id", "first", cpus=1)
    daemons.start_worker("--worker-id", "second", cpus=1)
    client = connect(daemons)
    wait_for(lambda: len(client.status().workers) == 2, 20, "both workers")
    thread, outcome = _fit_in_thread(
        tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        param_space={"steps": 30, "x": tune.grid_search([1, 2])},
    )
    out = tmp_path / "out"
    wait_for(
        lambda: len(list(out.glob("*/*/checkpoint_000003"))) == 2,
        30,
        "both trials to checkpoint",
    )
    drained = tune_cli(daemons, "drain", "first")
    assert drained.returncode == 0, drained.stderr
    assert "1 trials move elsewhere" in drained.stdout
    assert first.wait(timeout=30) == 0
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    results = outcome["results"]
    assert results.num_errors == 0
    for result in results:
        steps = result.metrics_dataframe["step"].tolist()
        assert steps == list(range(30))
    assert any(r.metrics["iterations_since_restore"] < 30 for r in results)


@pytest.mark.slow
def test_sigterm_on_a_worker_moves_its_trials_and_it_exits(daemons, connect, tmp_path):
    daemons.start_head()
    first = daemons.start_worker("--worker-id", "first", cpus=1)
    daemons.start_worker("--worker-id", "second", cpus=1)
    client = connect(daemons)
    wait_for(lambda: len(client.status().workers) == 2, 20, "both workers")
    thread, outcome = _fit_in_thread(
        tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        param_space={"steps": 30, "x": tune.grid_search([1, 2])},
    )
    out = tmp_path / "out"
    wait_for(
        lambda: len(list(out.glob("*/*/checkpoint_000003"))) == 2,
        30,
        "both trials to checkpoint",
    )
    first.send_signal(signal.SIGTERM)
    # The worker stops its trial, uploads what it staged and leaves cleanly.
    assert first.wait(timeout=WORKER_STOP_S) == 0
    log = (tmp_path / "worker-1.log").read_text()
    assert "tune-worker stopping: SIGTERM" in log, log
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    results = outcome["results"]
    # max_failures is 0: an interruption counted as a failure would be an error.
    assert results.num_errors == 0, results.errors
    for result in results:
        assert result.metrics_dataframe["step"].tolist() == list(range(30))
    resumed = [r for r in results if r.metrics["iterations_since_restore"] < 30]
    assert len(resumed) == 1, "the SIGTERMed worker's trial did not resume"


def test_a_worker_restarted_under_its_id_runs_trials_again(daemons, connect, tmp_path):
    # `systemctl restart tune-worker@1`: SIGTERM, then a new process, same id.
    daemons.start_head()
    first = daemons.start_worker("--worker-id", "same", cpus=1)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    thread, outcome = _fit_in_thread(
        tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
        param_space={"steps": 30},
    )
    out = tmp_path / "out"
    wait_for(lambda: list(out.glob("*/*/checkpoint_000003")), 30, "a checkpoint")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=WORKER_STOP_S) == 0
    daemons.start_worker("--worker-id", "same", cpus=1)
    wait_for(
        lambda: "1 trials running" in tune_cli(daemons, "status").stdout,
        15,
        "the trial to run on the restarted worker",
    )
    thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["results"].num_errors == 0


def test_metrics_pending_reason_and_stop(daemons, connect, tmp_path):
    port = free_port()
    daemons.start_head("--metrics-port", str(port))
    daemons.start_worker(cpus=2)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    thread, outcome = _fit_in_thread(
        tune.RunConfig(storage_path=str(tmp_path / "out"), name="big", verbose=0),
        param_space={"steps": 2},
    )
    # A second experiment whose trials cannot fit shows why it waits. It is
    # submitted while the first one starts, to the same storage path.
    big = tune.with_resources(slow_steps, {"cpu": 4})
    waiting_thread, waiting_outcome = _fit_in_thread(
        tune.RunConfig(storage_path=str(tmp_path / "out"), name="waits", verbose=0),
        trainable=big,
        param_space={"steps": 1},
    )
    thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    assert "error" not in waiting_outcome, waiting_outcome.get("error")
    shown = wait_for(
        lambda: "big enough" in (out := tune_cli(daemons, "status").stdout) and out,
        20,
        "the pending reason",
    )
    assert "asking 4 cpu" in shown
    stopped = tune_cli(daemons, "stop", "waits")
    assert stopped.returncode == 0, stopped.stderr
    waiting_thread.join(timeout=30)
    assert not waiting_thread.is_alive()

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    text = body.read().decode()
    assert "tune_workers 1.0" in text
    assert 'tune_trials{state="TERMINATED"} 1.0' in text
    assert "tune_results_total 2.0" in text
    assert "tune_object_store_bytes" in text


def gpu_report(config):
    tune.report({"devices": os.environ.get("CUDA_VISIBLE_DEVICES", "unset")})
    time.sleep(0.5)


def test_each_trial_sees_only_its_gpus(daemons, connect, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # the worker's own
    daemons.start_head()
    daemons.start_worker("--gpus", "2", cpus=3)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    run_config = tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0)
    with_gpu = tune.Tuner(
        tune.with_resources(gpu_report, {"cpu": 1, "gpu": 1}),
        param_space={"x": tune.grid_search([1, 2])},
        run_config=run_config,
    ).fit()
    assert sorted(r.metrics["devices"] for r in with_gpu) == ["0", "1"]
    without = tune.Tuner(gpu_report, run_config=run_config).fit()
    assert without[0].metrics["devices"] == ""


def gpu_share_report(config):
    """Report the devices seen, and whether the other trial ran meanwhile."""
    marks = Path(config["marks"])
    (marks / f"{config['x']}.start").touch()
    deadline = time.monotonic() + 20
    while len(list(marks.glob("*.start"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    tune.report(
        {
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
            "together": len(list(marks.glob("*.start"))) == 2,
        }
    )


def test_two_half_gpu_trials_share_one_device(daemons, connect, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # the worker's own
    daemons.start_head()
    daemons.start_worker("--gpus", "1", cpus=2)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    marks = tmp_path / "marks"
    marks.mkdir()
    results = tune.Tuner(
        tune.with_resources(gpu_share_report, {"gpu": 0.5, "cpu": 1}),
        param_space={"marks": str(marks), "x": tune.grid_search([1, 2])},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()
    assert results.num_errors == 0, results.errors
    assert [r.metrics["devices"] for r in results] == ["0", "0"]
    assert all(r.metrics["together"] for r in results), "the trials ran in turn"


def test_a_worker_given_one_gpu_hands_its_trials_that_gpu(
    daemons, connect, tmp_path, monkeypatch
):
    # One worker per GPU: the operator starts it with CUDA_VISIBLE_DEVICES=3.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    daemons.start_head()
    daemons.start_worker("--gpus", "1", cpus=1)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    results = tune.Tuner(
        tune.with_resources(gpu_report, {"cpu": 1, "gpu": 1}),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()
    assert results.num_errors == 0, results.errors
    assert results[0].metrics["devices"] == "3"


def test_working_dir_ships_the_users_modules(daemons, connect, tmp_path, monkeypatch):
    code = tmp_path / "project"
    code.mkdir()
    (code / "helpers_for_working_dir.py").write_text(
        "def double(x):\n    return 2 * x\n"
    )
    (code / "train_for_working_dir.py").write_text(
        textwrap.dedent(
            """
            import tune_client as tune
            from helpers_for_working_dir import double

            def train(config):
                tune.report({"value": double(config["x"])})
            """
        )
    )
    monkeypatch.syspath_prepend(str(code))
    from train_for_working_dir import train

    daemons.start_head()
    daemons.start_worker(cpus=2)
    connect.init_kwargs = {"working_dir": str(code)}
    connect(daemons)
    results = tune.Tuner(
        train,
        param_space={"x": tune.grid_search([1, 5])},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()
    assert results.num_errors == 0, results.errors
    assert sorted(r.metrics["value"] for r in results) == [2, 10]


CLIENT_THAT_LEAVES = """
import sys, time
from pathlib import Path
import tune_client as tune
from tests.integration.test_operations import slow_steps
tune.init(sys.argv[1], token=sys.argv[2])
tune.Tuner(
    slow_steps,
    param_space={"steps": 25, "x": tune.grid_search([1, 2])},
    run_config=tune.RunConfig(storage_path=sys.argv[3], name="left", verbose=0),
).fit()
"""


@pytest.mark.slow
def test_experiment_outlives_its_client_and_restore_attaches(
    daemons, connect, tmp_path
):
    daemons.start_head()
    daemons.start_worker(cpus=2)
    storage = tmp_path / "out"
    leaving = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLIENT_THAT_LEAVES,
            daemons.address,
            daemons.token,
            str(storage),
        ],
        env=daemon_env(),
        cwd=REPO,
    )
    experiment = storage / "left"
    wait_for(lambda: len(list(experiment.glob("*/ckpt-*"))) >= 2, 30, "progress")
    leaving.send_signal(signal.SIGKILL)
    leaving.wait(timeout=10)

    connect(daemons)
    results = tune.Tuner.restore(str(experiment), slow_steps).fit()
    assert len(results) == 2 and results.num_errors == 0
    for result in results:
        assert result.metrics["step"] == 24
        lines = (Path(result.path) / "result.json").read_text().splitlines()
        steps = [json.loads(line)["step"] for line in lines]
        assert steps == list(range(25)), "the experiment restarted or repeated"
        assert result.metrics["iterations_since_restore"] == 25


def timed(config):
    Path(config["log"], f"{config['group']}-{config['i']}").write_text(str(time.time()))
    time.sleep(0.4)
    tune.report({"done": 1})


def test_two_clients_share_the_cluster_fairly(daemons, connect, tmp_path):
    daemons.start_head()
    daemons.start_worker(cpus=1)
    client = connect(daemons)
    wait_for(lambda: client.status().workers, 20, "the worker")
    log = tmp_path / "starts"
    log.mkdir()
    threads = []
    for group in ("first", "second"):
        space = {"log": str(log), "group": group, "i": tune.grid_search([0, 1, 2, 3])}
        threads.append(
            threading.Thread(
                target=tune.Tuner(
                    timed,
                    param_space=space,
                    run_config=tune.RunConfig(
                        storage_path=str(tmp_path / "out"), name=group, verbose=0
                    ),
                ).fit,
                daemon=True,
            )
        )
    threads[0].start()
    wait_for(lambda: any(log.iterdir()), 20, "the first experiment to start")
    threads[1].start()
    for thread in threads:
        thread.join(timeout=60)
    order = [
        p.name.split("-")[0]
        for p in sorted(log.iterdir(), key=lambda p: float(p.read_text()))
    ]
    assert len(order) == 8
    # Once both wait, one slot at a time goes to each experiment in turn.
    assert order[1:7] in (
        ["second", "first"] * 3,
        ["first", "second"] * 3,
    ), order
