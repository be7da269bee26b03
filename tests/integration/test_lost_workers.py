"""A worker that goes silent is declared lost: its trial runs again on another
worker from its latest checkpoint. When the worker wakes up it joins again, the
trial it still runs is stopped, and its late reports are dropped. With a finite
max_failures, a trial whose worker is lost once too often ends in ERROR. The
head logs each of these steps for the operator."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

import tune_client as tune
from tests.conftest import REPO, Daemons, daemon_env, wait_for
from tune_client import cluster
from tune_client.cluster import HeadClient

ITERATIONS = 40
HEARTBEAT_TIMEOUT_S = 2
EXPERIMENT = "lost_workers"


def checkpointing(config):
    """Counts to ITERATIONS, one checkpoint per step, resuming where it left off."""
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.json")) as f:
                step = json.load(f)["step"]
    pid = os.getpid()
    with open(os.path.join(config["marks"], f"{pid}.start"), "w") as f:
        json.dump({"trial_id": tune.get_context().get_trial_id(), "from": step}, f)
    while step < ITERATIONS:
        time.sleep(0.15)
        step += 1
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as f:
                json.dump({"step": step, "pid": pid}, f)
            tune.report(
                {"step": step, "trial_pid": pid},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )
    open(os.path.join(config["marks"], f"{pid}.done"), "w").close()


# ---- helpers --------------------------------------------------------------


def trial_starts(marks: Path) -> dict[int, dict]:
    """Each trial process that started: pid -> {"trial_id", "from"}."""
    starts = {}
    for mark in marks.glob("*.start"):
        text = mark.read_text()
        if text:
            starts[int(mark.stem)] = json.loads(text)
    return starts


def worker_of(pid: int, workers: list[subprocess.Popen]) -> int | None:
    """Which of ``workers`` (by index) runs process ``pid``, if it is alive."""
    try:
        ancestors = {p.pid for p in psutil.Process(pid).parents()}
    except psutil.NoSuchProcess:
        return None
    for index, worker in enumerate(workers):
        if worker.pid in ancestors:
            return index
    return None


def process_tree(process: subprocess.Popen) -> list[psutil.Process]:
    root = psutil.Process(process.pid)
    return [root, *root.children(recursive=True)]


def signal_all(processes: list[psutil.Process], how: signal.Signals) -> None:
    for process in processes:
        try:
            process.send_signal(how)
        except psutil.NoSuchProcess:
            pass


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def result_rows(trial_path: str | Path) -> list[dict]:
    lines = (Path(trial_path) / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def trial_folders(experiment: Path) -> list[Path]:
    if not experiment.exists():
        return []
    return [p for p in experiment.iterdir() if p.is_dir()]


def checkpointed(experiment: Path, count: int) -> bool:
    folders = trial_folders(experiment)
    return len(folders) == 2 and all(
        len(list(folder.glob("checkpoint_*"))) >= count for folder in folders
    )


def assert_each_iteration_once(trial_path: str | Path) -> list[dict]:
    rows = result_rows(trial_path)
    iterations = [r["training_iteration"] for r in rows]
    assert iterations == list(range(1, ITERATIONS + 1)), iterations
    assert all(r["step"] == r["training_iteration"] for r in rows)
    return rows


def worker_count(client: HeadClient) -> int:
    return len(client.status().workers)


def keeps_holding(check, seconds: float) -> None:
    """Run ``check`` (which asserts) over and over for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
        time.sleep(0.1)
    check()


class TwoWorkerCluster:
    """A head and two one-CPU workers on loopback."""

    def __init__(self, daemons) -> None:
        self.daemons = daemons
        daemons.start_head("--heartbeat-timeout", str(HEARTBEAT_TIMEOUT_S))
        self.workers = [daemons.start_worker(cpus=1) for _ in range(2)]
        self.client = HeadClient(daemons.address, daemons.token, embedded=None)
        wait_for(lambda: worker_count(self.client) == 2, 20, "both workers to join")

    def fit_in_background(self, tmp_path: Path, monkeypatch) -> tuple:
        marks = tmp_path / "marks"
        marks.mkdir()
        results = tmp_path / "results"
        monkeypatch.setattr(cluster, "_client", None)
        tune.init(self.daemons.address, token=self.daemons.token)
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["results"] = tune.Tuner(
                    checkpointing,
                    param_space={"marks": str(marks), "x": tune.grid_search([1, 2])},
                    run_config=tune.RunConfig(
                        storage_path=str(results),
                        name=EXPERIMENT,
                        verbose=0,
                        failure_config=tune.FailureConfig(max_failures=-1),
                    ),
                ).fit()
            except Exception as exc:  # noqa: BLE001 - reported by the test
                outcome["error"] = exc

        client = threading.Thread(target=run, daemon=True)
        client.start()
        return client, outcome, marks, results / EXPERIMENT

    def tune_status(self) -> str:
        shown = subprocess.run(
            [sys.executable, "-m", "tune_client.cli", "status"],
            env=daemon_env(
                TUNE_ADDRESS=self.daemons.address, TUNE_TOKEN=self.daemons.token
            ),
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
        assert shown.returncode == 0, shown.stderr
        return shown.stdout


@pytest.fixture
def two_workers(daemons):
    started = TwoWorkerCluster(daemons)
    yield started
    started.client.close()


# ---- tests ------------------------------------------------------------------


@pytest.mark.slow
def test_frozen_worker_is_lost_and_its_trial_resumes_elsewhere(
    two_workers, tmp_path, monkeypatch
):
    workers = two_workers.workers
    frozen: list[psutil.Process] = []
    try:
        client, outcome, marks, experiment = two_workers.fit_in_background(
            tmp_path, monkeypatch
        )
        wait_for(lambda: len(trial_starts(marks)) == 2, 30, "both trials to start")
        wait_for(lambda: checkpointed(experiment, 2), 30, "both trials to checkpoint")
        starts = trial_starts(marks)
        placed = {worker_of(pid, workers): pid for pid in starts}
        assert set(placed) == {0, 1}, f"one trial per worker, got {placed}"
        stale_pid = placed[0]
        moved_trial = starts[stale_pid]["trial_id"]

        # Freeze worker 0 and its trial: no heartbeats, no results.
        os.kill(workers[0].pid, signal.SIGSTOP)
        frozen = process_tree(workers[0])
        signal_all(frozen, signal.SIGSTOP)

        def restarted() -> int | None:
            return next(
                (
                    pid
                    for pid, start in trial_starts(marks).items()
                    if start["trial_id"] == moved_trial and pid != stale_pid
                ),
                None,
            )

        wait_for(
            lambda: worker_count(two_workers.client) == 1,
            HEARTBEAT_TIMEOUT_S + 15,
            "the head to declare the frozen worker lost",
        )
        new_pid = wait_for(restarted, 30, "the lost trial to start again")
        assert worker_of(new_pid, workers) == 1, "the trial restarted on a wrong worker"
        assert trial_starts(marks)[new_pid]["from"] > 0, "not restored from checkpoint"

        client.join(timeout=45)
        assert not client.is_alive(), "fit() did not return"
        assert "error" not in outcome, outcome.get("error")
        results = outcome["results"]
        assert len(results) == 2 and results.num_errors == 0
        by_trial = {r.metrics["trial_id"]: r for r in results}
        for result in results:
            assert_each_iteration_once(result.path)
        final = by_trial[moved_trial].metrics
        assert final["trial_pid"] == new_pid
        assert final["iterations_since_restore"] < final["training_iteration"]
        assert final["training_iteration"] == ITERATIONS

        # Wake the worker: it joins again and its stale trial is stopped.
        signal_all(frozen, signal.SIGCONT)
        frozen = []
        wait_for(
            lambda: worker_count(two_workers.client) == 2,
            30,
            "the woken worker to join again",
        )
        wait_for(lambda: is_gone(stale_pid), 20, "the stale trial process to end")
        assert not (marks / f"{stale_pid}.done").exists(), (
            "the stale trial ran to its end instead of being stopped"
        )

        def no_duplicates() -> None:
            for result in results:
                assert_each_iteration_once(result.path)

        keeps_holding(no_duplicates, 1.0)  # late reports arrive; none is logged
        resumed_at = trial_starts(marks)[new_pid]["from"]
        origin = [r["trial_pid"] for r in result_rows(by_trial[moved_trial].path)]
        assert origin == [stale_pid] * resumed_at + [new_pid] * (
            ITERATIONS - resumed_at
        ), "a result of the stale trial was logged after it was replaced"
        assert by_trial[moved_trial].checkpoint is not None
        with by_trial[moved_trial].checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / "state.json").read_text())
        assert state == {"step": ITERATIONS, "pid": new_pid}, (
            "the stale trial overwrote the checkpoint of the trial that replaced it"
        )
    finally:
        signal_all(frozen, signal.SIGCONT)
        tune.init(None)


@pytest.mark.slow
def test_tune_status_lists_both_workers_and_the_experiment(
    two_workers, tmp_path, monkeypatch
):
    try:
        client, outcome, marks, _ = two_workers.fit_in_background(tmp_path, monkeypatch)
        wait_for(lambda: len(trial_starts(marks)) == 2, 30, "both trials to start")
        shown = two_workers.tune_status()
        client.join(timeout=45)
    finally:
        tune.init(None)
    assert not client.is_alive(), "fit() did not return"
    assert "error" not in outcome, outcome.get("error")
    assert "Workers (2):" in shown, shown
    worker_lines = [line for line in shown.splitlines() if "total 1 cpu" in line]
    assert len(worker_lines) == 2, shown
    assert all("1 trials running" in line for line in worker_lines), shown
    assert "Experiments (1):" in shown, shown
    assert f"{EXPERIMENT} [running] 2 RUNNING" in shown, shown

    after = two_workers.tune_status()
    assert "Workers (2):" in after and f"{EXPERIMENT} [finished] 2 TERMINATED" in after


# ---- a trial lost twice with max_failures=1 ---------------------------------


def _reported_by(experiment: Path, pid: int) -> bool:
    """Whether trial process ``pid`` has a result in the log yet."""
    try:
        rows = [row for f in trial_folders(experiment) for row in result_rows(f)]
    except (OSError, ValueError):  # not written yet, or a line half written
        return False
    return any(row["trial_pid"] == pid for row in rows)


def _lose_a_trial_twice(daemons: Daemons, marks: Path, results: Path):
    """Freeze the worker running the trial, then kill the one it moved to."""
    workers = [daemons.start_worker("--worker-id", f"w{i}", cpus=1) for i in range(2)]
    client = HeadClient(daemons.address, daemons.token, embedded=None)
    wait_for(lambda: worker_count(client) == 2, 20, "both workers to join")
    client.close()
    tune.init(daemons.address, token=daemons.token)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["results"] = tune.Tuner(
                checkpointing,
                param_space={"marks": str(marks)},
                run_config=tune.RunConfig(
                    storage_path=str(results),
                    name="lost_twice",
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=1),
                ),
            ).fit()
        except Exception as exc:  # noqa: BLE001 - asserted by the tests
            outcome["error"] = exc

    fitting = threading.Thread(target=run, daemon=True)
    fitting.start()
    frozen: list[psutil.Process] = []
    try:
        (first_pid,) = wait_for(lambda: list(trial_starts(marks)), 30, "the trial")
        wait_for(
            lambda: list(results.glob("*/*/checkpoint_000001")),
            30,
            "the trial to checkpoint",
        )
        first = worker_of(first_pid, workers)
        frozen = process_tree(workers[first])
        signal_all(frozen, signal.SIGSTOP)
        second_pid = wait_for(
            lambda: next((p for p in trial_starts(marks) if p != first_pid), None),
            HEARTBEAT_TIMEOUT_S + 20,
            "the trial to start again on the other worker",
        )
        second = worker_of(second_pid, workers)
        wait_for(
            lambda: _reported_by(results / "lost_twice", second_pid),
            30,
            "the resumed trial to report",
        )
        signal_all(process_tree(workers[second]), signal.SIGKILL)
        fitting.join(timeout=HEARTBEAT_TIMEOUT_S + 30)
    finally:
        signal_all(frozen, signal.SIGKILL)
    assert not fitting.is_alive(), "fit() did not return"
    return SimpleNamespace(
        results=outcome.get("results"),
        error=outcome.get("error"),
        starts=trial_starts(marks),
        pids=(first_pid, second_pid),
        workers=(f"w{first}", f"w{second}"),
        log=(daemons.tmp_path / "head-0.log").read_text(),
    )


@pytest.fixture(scope="module")
def lost_twice(tmp_path_factory):
    """Run the scenario once; the tests below look at what it left behind."""
    tmp_path = tmp_path_factory.mktemp("lost_twice")
    marks = tmp_path / "marks"
    marks.mkdir()
    daemons = Daemons(tmp_path)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cluster, "_client", None)
            daemons.start_head("--heartbeat-timeout", str(HEARTBEAT_TIMEOUT_S))
            return _lose_a_trial_twice(daemons, marks, tmp_path / "results")
    finally:
        tune.init(None)
        daemons.stop()


@pytest.mark.slow
def test_a_trial_lost_more_often_than_max_failures_errors(lost_twice):
    assert lost_twice.error is None, lost_twice.error
    results = lost_twice.results
    assert len(results) == 1 and results.num_errors == 1, results.errors
    (result,) = results
    first, second = lost_twice.workers
    assert f"the worker {second} running it was lost" in str(result.error)
    first_pid, second_pid = lost_twice.pids
    assert lost_twice.starts[first_pid]["from"] == 0
    assert lost_twice.starts[second_pid]["from"] > 0, "not resumed from a checkpoint"
    assert len(lost_twice.starts) == 2, "the trial ran again after its last failure"
    assert result.metrics["trial_pid"] == second_pid
    assert result.metrics["step"] > lost_twice.starts[second_pid]["from"]


@pytest.mark.slow
def test_head_log_tells_the_operator_what_happened(lost_twice):
    log = lost_twice.log
    first, second = lost_twice.workers
    trial_id = lost_twice.results[0].metrics["trial_id"]
    for worker_id in (first, second):
        assert re.search(rf"worker {worker_id} joined from \S+ with 1 cpu", log), log
        assert re.search(rf"trial \S*{trial_id} placed on worker {worker_id}", log)
    assert f"worker {first} lost: no heartbeat for" in log, log
    assert f"worker {second} lost: its stream closed for" in log, log
    assert re.search(
        rf"trial \S*{trial_id} failed: the worker {first} running it was lost "
        r"\(failure 1 of at most 1\); restarting from checkpoint_\d+",
        log,
    ), log
    assert re.search(
        rf"trial \S*{trial_id} errored: the worker {second} running it was lost", log
    ), log


@pytest.mark.slow
def test_head_log_says_why_a_trial_restarts(lost_twice):
    first, _ = lost_twice.workers
    restarts = [line for line in lost_twice.log.splitlines() if "restarting" in line]
    assert restarts, lost_twice.log
    assert f"the worker {first} running it was lost" in restarts[0], restarts
