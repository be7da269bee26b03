"""Storage on a real S3 endpoint (moto's server on loopback), on a folder only
the head sees, and restores from storage alone."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import tune_client as tune
from tests.conftest import daemon_env, tune_daemon_processes, wait_for
from tune_client import cluster
from tune_client.errors import RestoreError, StorageError

BUCKET = "tune-results"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A real S3 endpoint on loopback; daemons started from now on reach it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    cluster.shutdown()  # the next fit starts daemons that see the endpoint
    import fsspec

    # Listings are not cached: the daemons change the bucket behind our back.
    fs = fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False)
    fs.mkdir(BUCKET)
    yield fs
    cluster.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


def checkpointing(config):
    """The guide's pattern: resume from a checkpoint, one per epoch."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "model.pkl"), "rb") as f:
                start = pickle.load(f)["epoch"] + 1
    for epoch in range(start, config["epochs"]):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "model.pkl"), "wb") as f:
                pickle.dump({"epoch": epoch, "a": config["a"]}, f)
            tune.report(
                {"metric": config["a"] * epoch},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )
        if config.get("fail_at") == epoch and not os.path.exists("failed_once"):
            open("failed_once", "w").close()
            raise RuntimeError("failing once on purpose")
    with open("artifact.txt", "w") as f:
        f.write(f"trained {config['a']}")


def quiet(**kwargs) -> tune.RunConfig:
    return tune.RunConfig(verbose=0, **kwargs)


def test_s3_results_checkpoints_and_restore_from_the_uri(s3):
    uri = f"s3://{BUCKET}/runs"
    results = tune.Tuner(
        checkpointing,
        param_space={"a": tune.grid_search([1.0, 2.0]), "epochs": 3},
        tune_config=tune.TuneConfig(metric="metric", mode="max"),
        run_config=quiet(storage_path=uri, name="s3exp"),
    ).fit()
    assert results.num_errors == 0
    experiment = f"{BUCKET}/runs/s3exp"
    for result in results:
        folder = result.path.removeprefix("s3://")
        names = {p.rsplit("/", 1)[-1] for p in s3.ls(folder)}
        assert {"result.json", "params.json", "artifact.txt"} <= names, names
        assert {f"checkpoint_00000{i}" for i in range(3)} <= names
        lines = s3.cat_file(f"{folder}/result.json").decode().splitlines()
        assert [json.loads(line)["training_iteration"] for line in lines] == [1, 2, 3]
        with result.checkpoint.as_directory() as local:
            with open(os.path.join(local, "model.pkl"), "rb") as f:
                assert pickle.load(f)["epoch"] == 2
    assert s3.exists(f"{experiment}/experiment_state.json")

    assert tune.Tuner.can_restore(f"s3://{experiment}")
    restored = tune.Tuner.restore(f"s3://{experiment}", checkpointing).get_results()
    before = results.get_dataframe().set_index("trial_id").sort_index()
    after = restored.get_dataframe().set_index("trial_id").sort_index()
    columns = ["metric", "training_iteration", "config/a", "checkpoint_dir_name"]
    assert before[columns].equals(after[columns])


def test_s3_retry_resumes_from_the_bucket_checkpoint(s3):
    results = tune.Tuner(
        checkpointing,
        param_space={"a": 1.0, "epochs": 4, "fail_at": 1},
        run_config=quiet(
            storage_path=f"s3://{BUCKET}/retry",
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    ).fit()
    (result,) = results
    assert result.error is None
    assert result.metrics["training_iteration"] == 4
    assert result.metrics["iterations_since_restore"] == 2


def printing(config):
    print(f"trial says {config['a']}")
    tune.report({"metric": config["a"]})


def test_log_to_file_lands_in_the_bucket(s3):
    results = tune.Tuner(
        printing,
        param_space={"a": tune.grid_search([1, 2])},
        run_config=quiet(storage_path=f"s3://{BUCKET}/logs", log_to_file=True),
    ).fit()
    assert results.num_errors == 0
    for result in results:
        folder = result.path.removeprefix("s3://")
        said = s3.cat_file(f"{folder}/stdout").decode()
        assert said == f"trial says {result.config['a']}\n"
        assert s3.cat_file(f"{folder}/stderr") == b""


def test_num_to_keep_leaves_two_checkpoints_in_the_bucket(s3):
    results = tune.Tuner(
        checkpointing,
        param_space={"a": 1.0, "epochs": 5},
        run_config=quiet(
            storage_path=f"s3://{BUCKET}/keep",
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    ).fit()
    folder = results[0].path.removeprefix("s3://")
    kept = sorted(p.rsplit("/", 1)[-1] for p in s3.ls(folder) if "/checkpoint_" in p)
    assert kept == ["checkpoint_000003", "checkpoint_000004"]
    assert [c.path.rsplit("/", 1)[-1] for c, _ in results[0].best_checkpoints] == kept


def report_then_die(config):
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "weights.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        tune.report({"step": 1}, checkpoint=tune.Checkpoint.from_directory(folder))
    os.kill(os.getpid(), signal.SIGKILL)


def test_checkpoint_reported_just_before_the_process_dies_is_stored(s3):
    results = tune.Tuner(
        report_then_die, run_config=quiet(storage_path=f"s3://{BUCKET}/dies")
    ).fit()
    (result,) = results
    assert "SIGKILL" in str(result.error)
    assert result.checkpoint is not None
    folder = result.checkpoint.path.removeprefix("s3://")
    assert s3.size(f"{folder}/weights.bin") == 1 << 20


def test_unreachable_storage_fails_before_any_trial(storage):
    with pytest.raises(StorageError, match="nosuchproto://nowhere/results"):
        tune.Tuner(
            checkpointing,
            param_space={"a": 1.0, "epochs": 1},
            run_config=quiet(storage_path="nosuchproto://nowhere/results"),
        ).fit()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_experiments_submitted_together_to_one_folder_both_pass_the_check(
    where, tmp_path, request
):
    """Two notebook threads submitting to the same storage path at once must
    not trip over each other's write probe."""
    from tune_client import storage as storage_checks

    if where == "s3":
        request.getfixturevalue("s3")
        path = f"s3://{BUCKET}/together"
    else:
        path = str(tmp_path / "together")
    errors: list[Exception] = []

    def check_many_times() -> None:
        for _ in range(30 if where == "s3" else 300):
            try:
                storage_checks.check_writable(path)
            except StorageError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=check_many_times) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB filesystem (tmpfs) to store into, so that an upload runs out of
    space; skipped where this process cannot mount one."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def outgrows_its_disk(config):
    """Three checkpoints; the second is larger than the whole disk."""
    for epoch, size in enumerate([1000, 4 << 20, 1000]):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "weights.bin"), "wb") as f:
                f.write(b"w" * size)
            tune.report(
                {"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(folder)
            )


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_stored_is_surfaced_and_the_trial_goes_on(
    small_disk, caplog
):
    caplog.set_level(logging.WARNING, logger="tune_client")
    results = tune.Tuner(
        outgrows_its_disk, run_config=quiet(storage_path=str(small_disk))
    ).fit()

    (result,) = results
    assert result.error is None and result.metrics["epoch"] == 2
    stored = [Path(c.path).name for c, _ in result.best_checkpoints]
    assert stored == ["checkpoint_000000", "checkpoint_000002"]
    assert (
        sorted(p.name for p in Path(result.path).iterdir() if "checkpoint" in p.name)
        == stored
    )
    (warning,) = [
        r.getMessage() for r in caplog.records if "checkpoint_000001" in r.getMessage()
    ]
    assert "No space left on device" in warning
    assert "failed after 6 tries" in warning


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_moved_experiment_restores_and_damaged_one_is_refused(storage, tmp_path):
    tune.Tuner(
        checkpointing,
        param_space={"a": tune.grid_search([1.0, 3.0]), "epochs": 2},
        run_config=quiet(name="movable"),
    ).fit()
    moved = tmp_path / "elsewhere" / "movable"
    shutil.copytree(storage / "movable", moved)
    shutil.rmtree(storage / "movable")

    results = tune.Tuner.restore(str(moved), checkpointing).get_results()
    assert sorted(r.config["a"] for r in results) == [1.0, 3.0]
    for result in results:
        assert result.path.startswith(str(moved))
        assert Path(result.checkpoint.path).is_dir()
    resumed = tune.Tuner.restore(str(moved), checkpointing).fit()
    assert resumed.num_errors == 0 and len(resumed) == 2

    state = moved / "experiment_state.json"
    state.write_text(state.read_text()[:40])
    before = _folder_digest(moved)
    with pytest.raises(RestoreError, match="experiment_state.json"):
        tune.Tuner.restore(str(moved), checkpointing).fit()
    assert _folder_digest(moved) == before


def test_storage_only_the_head_sees_gets_files_streamed(daemons, tmp_path, monkeypatch):
    daemons.start_head("--worker-storage", "stream")
    daemons.start_worker(cpus=2)
    monkeypatch.setattr(cluster, "_client", None)
    tune.init(daemons.address, token=daemons.token)
    head_storage = tmp_path / "head-only"
    try:
        results = tune.Tuner(
            checkpointing,
            param_space={"a": 2.0, "epochs": 3, "fail_at": 1},
            run_config=quiet(
                storage_path=str(head_storage),
                failure_config=tune.FailureConfig(max_failures=1),
            ),
        ).fit()
    finally:
        tune.init(None)
    (result,) = results
    assert result.error is None
    folder = Path(result.path)
    assert folder.parent.parent == head_storage
    assert (folder / "artifact.txt").read_text() == "trained 2.0"
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == [
        "checkpoint_000000",
        "checkpoint_000001",
        "checkpoint_000002",
    ]
    assert result.metrics["iterations_since_restore"] == 1


def test_storage_filesystem_with_a_path_without_scheme(s3):
    """Ray's RunConfig(storage_filesystem=...): the path names a place in that
    filesystem ("bucket/prefix"), never a local folder of the same name."""
    import s3fs

    filesystem = s3fs.S3FileSystem(skip_instance_cache=True)
    experiment = f"{BUCKET}/fs-runs/fsexp"
    results = tune.Tuner(
        checkpointing,
        param_space={"a": tune.grid_search([1.0, 2.0]), "epochs": 2},
        tune_config=tune.TuneConfig(metric="metric", mode="max"),
        run_config=quiet(
            storage_path=f"{BUCKET}/fs-runs",
            storage_filesystem=filesystem,
            name="fsexp",
        ),
    ).fit()
    assert results.num_errors == 0
    assert results.experiment_path == experiment
    assert not os.path.exists(BUCKET), "the path became a local folder"
    assert s3.exists(f"{experiment}/experiment_state.json")
    _assert_results_in_filesystem(results, experiment, filesystem)

    assert tune.Tuner.can_restore(experiment, storage_filesystem=filesystem)
    assert not tune.Tuner.can_restore(experiment)  # no such local folder
    restored = tune.Tuner.restore(
        experiment, checkpointing, storage_filesystem=filesystem
    )
    grid = restored.get_results()
    _assert_results_in_filesystem(grid, experiment, filesystem)
    columns = ["metric", "training_iteration", "config/a", "checkpoint_dir_name"]
    before = results.get_dataframe().set_index("trial_id").sort_index()[columns]
    assert (
        grid.get_dataframe().set_index("trial_id").sort_index()[columns].equals(before)
    )
    again = restored.fit()  # finished: nothing runs, results read back whole
    _assert_results_in_filesystem(again, experiment, filesystem)
    with pytest.raises(TypeError, match="storage_filesytem"):
        tune.Tuner.restore(experiment, checkpointing, storage_filesytem=filesystem)


def _assert_results_in_filesystem(results, experiment: str, filesystem) -> None:
    assert len(results) == 2
    for result in results:
        assert result.path.startswith(f"{experiment}/")
        assert result.filesystem is filesystem
        assert result.checkpoint.filesystem is filesystem
        with result.checkpoint.as_directory() as local:
            with open(os.path.join(local, "model.pkl"), "rb") as f:
                assert pickle.load(f)["epoch"] == 1
        assert list(result.metrics_dataframe["training_iteration"]) == [1, 2]


def empty_checkpoints(config):
    """Reports empty checkpoint folders and resumes from one."""
    checkpoint = tune.get_checkpoint()
    with tempfile.TemporaryDirectory() as folder:
        if checkpoint is not None:
            with checkpoint.as_directory() as restored:
                assert os.path.isdir(restored) and not os.listdir(restored)
            tune.report(
                {"resumed": 1}, checkpoint=tune.Checkpoint.from_directory(folder)
            )
            return
        tune.report({"resumed": 0}, checkpoint=tune.Checkpoint.from_directory(folder))
    raise RuntimeError("failing once on purpose")


def test_empty_checkpoint_streamed_to_the_head(daemons, tmp_path, monkeypatch):
    daemons.start_head("--worker-storage", "stream")
    daemons.start_worker(cpus=1)
    monkeypatch.setattr(cluster, "_client", None)
    tune.init(daemons.address, token=daemons.token)
    try:
        results = tune.Tuner(
            empty_checkpoints,
            run_config=quiet(
                storage_path=str(tmp_path / "head-only"),
                failure_config=tune.FailureConfig(max_failures=1),
            ),
        ).fit()
    finally:
        tune.init(None)
    (result,) = results
    assert result.error is None
    assert result.metrics["resumed"] == 1
    folders = sorted(Path(result.path).glob("checkpoint_*"))
    assert [p.name for p in folders] == ["checkpoint_000000", "checkpoint_000001"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in folders)


# ---- restoring from a bucket --------------------------------------------------


def paced(config, table=()):
    """One checkpoint per epoch, slowly enough to be interrupted midway; reports
    the sizes of its inputs from param_space and with_parameters too."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "model.pkl"), "rb") as f:
                start = pickle.load(f)["epoch"] + 1
    inputs = {"weights": len(config.get("weights", b"")), "table": len(table)}
    for epoch in range(start, config["epochs"]):
        time.sleep(0.2)
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "model.pkl"), "wb") as f:
                pickle.dump({"epoch": epoch}, f)
            tune.report(
                {"metric": config["a"] * epoch, "started_at": start, **inputs},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


EPOCHS = 10


def _interrupt_after_checkpoints(tuner: tune.Tuner, s3, experiment: str) -> list:
    """Run ``tuner`` until each of its trials has two checkpoints in the bucket,
    then stop it as `tune stop` does; the results of that first fit."""
    returned: list = []
    fitting = threading.Thread(target=lambda: returned.append(tuner.fit()))
    fitting.start()

    def checkpointed_twice() -> bool:
        s3.invalidate_cache()
        markers = s3.glob(f"{experiment}/*/checkpoint_*/.checkpoint_complete")
        trials = {m.split("/")[-3] for m in markers}
        per_trial = [sum(f"/{t}/" in m for m in markers) for t in trials]
        return len(trials) == 2 and min(per_trial) >= 2

    wait_for(checkpointed_twice, 60, "two checkpoints per trial", interval=0.2)
    cluster.get_client().stop_experiment(experiment.rsplit("/", 1)[-1])
    fitting.join(timeout=60)
    (first,) = returned
    assert all(r.metrics["training_iteration"] < EPOCHS for r in first)
    return first


def _interrupted(s3, name: str, **run_config) -> str:
    """An experiment stopped midway in the bucket; its path there."""
    experiment = f"{BUCKET}/halted/{name}"
    tuner = tune.Tuner(
        paced,
        param_space={"a": tune.grid_search([1.0, 2.0]), "epochs": EPOCHS},
        run_config=quiet(storage_path=f"s3://{BUCKET}/halted", name=name, **run_config),
    )
    _interrupt_after_checkpoints(tuner, s3, experiment)
    return experiment


def _iterations(s3, result_json: str) -> list[int]:
    lines = s3.cat_file(result_json).decode().splitlines()
    return [json.loads(line)["training_iteration"] for line in lines]


def _assert_resumed(results, s3) -> None:
    """Every trial ran to the end from a checkpoint, logging each iteration once."""
    assert len(results) == 2 and results.num_errors == 0
    for result in results:
        assert result.metrics["training_iteration"] == EPOCHS
        assert result.metrics["started_at"] >= 2, "it started over"
        assert result.metrics["iterations_since_restore"] < EPOCHS
        folder = result.path.removeprefix("s3://")
        assert _iterations(s3, f"{folder}/result.json") == list(range(1, EPOCHS + 1))


def test_restore_from_the_bucket_resumes_unfinished_trials(s3):
    experiment = _interrupted(s3, "resumes")
    uri = f"s3://{experiment}"
    assert tune.Tuner.can_restore(uri)
    _assert_resumed(tune.Tuner.restore(uri, paced).fit(), s3)


def _bucket_digest(s3, prefix: str) -> dict[str, bytes]:
    return {path: s3.cat_file(path) for path in sorted(s3.find(prefix))}


def test_the_bucket_is_final_when_fit_returns(s3):
    """A user may copy or read the experiment as soon as fit() returns: the
    head must have pushed everything by then, and push nothing later."""
    results = tune.Tuner(
        checkpointing,
        param_space={"a": tune.grid_search([1.0, 2.0]), "epochs": 2},
        tune_config=tune.TuneConfig(metric="metric", mode="max"),
        run_config=quiet(storage_path=f"s3://{BUCKET}/settled", name="settled"),
    ).fit()
    assert results.num_errors == 0
    experiment = f"{BUCKET}/settled/settled"
    s3.invalidate_cache()
    at_return = _bucket_digest(s3, experiment)
    # The searcher's last state: it knows that no trial is running any more.
    searcher_state = pickle.loads(at_return[f"{experiment}/searcher_state.pkl"])
    assert searcher_state["live_trials"] == [], searcher_state

    cluster.shutdown()  # the head pushes whatever it still held back
    s3.invalidate_cache()
    after_shutdown = _bucket_digest(s3, experiment)
    changed = sorted(
        path
        for path in at_return.keys() | after_shutdown.keys()
        if at_return.get(path) != after_shutdown.get(path)
    )
    assert changed == [], changed


TIDY_SCRIPT = """
import sys
import tune_client as tune

def train(config):
    tune.report({"metric": 1.0})

results = tune.Tuner(
    train, run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0)
).fit()
assert results.num_errors == 0, results.errors
"""


def test_an_embedded_run_to_a_bucket_leaves_nothing_in_the_temp_folder(s3, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(TIDY_SCRIPT)
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), f"s3://{BUCKET}/tidy"],
        env=daemon_env(TMPDIR=str(temp)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert s3.glob(f"{BUCKET}/tidy/*/experiment_state.json")
    assert sorted(p.name for p in temp.iterdir()) == []


def test_experiment_copied_to_another_prefix_restores_there(s3):
    original = _interrupted(s3, "copied")
    copy = f"{BUCKET}/elsewhere/copied"
    s3.copy(original, copy, recursive=True)
    s3.invalidate_cache()
    before = _bucket_digest(s3, original)

    results = tune.Tuner.restore(f"s3://{copy}", paced).fit()
    _assert_resumed(results, s3)
    assert results.experiment_path == f"s3://{copy}"
    for result in results:
        assert result.path.startswith(f"s3://{copy}/")
        assert result.checkpoint.path.startswith(f"s3://{copy}/")
    s3.invalidate_cache()
    assert _bucket_digest(s3, original) == before, "the original was written to"


def test_a_checkpoint_without_its_marker_is_not_resumed_from(s3):
    """An upload cut short leaves files but no marker; neither get_results nor
    a restore may take that folder for a checkpoint, even though its result
    reached the head."""
    experiment = _interrupted(s3, "torn")
    trial = sorted(p for p in s3.ls(experiment) if s3.isdir(p))[0]
    torn = f"{trial}/checkpoint_000090"
    s3.pipe_file(f"{torn}/model.pkl", pickle.dumps({"epoch": 90}))
    lines = s3.cat_file(f"{trial}/result.json").decode().splitlines()
    last = json.loads(lines[-1])
    last.update(training_iteration=last["training_iteration"] + 1)
    last.update(checkpoint_dir_name="checkpoint_000090")
    s3.pipe_file(f"{trial}/result.json", "\n".join([*lines, json.dumps(last)]) + "\n")
    s3.invalidate_cache()

    uri = f"s3://{experiment}"
    for result in tune.Tuner.restore(uri, paced).get_results():
        names = [c.path.rsplit("/", 1)[-1] for c, _ in result.best_checkpoints]
        assert "checkpoint_000090" not in names
        assert result.checkpoint.path.rsplit("/", 1)[-1] != "checkpoint_000090"
    _assert_resumed(tune.Tuner.restore(uri, paced).fit(), s3)


def test_restore_without_resume_unfinished_runs_nothing(s3):
    experiment = _interrupted(s3, "left-unfinished")
    s3.invalidate_cache()
    logs = {p: s3.cat_file(p) for p in s3.glob(f"{experiment}/*/result.json")}

    results = tune.Tuner.restore(
        f"s3://{experiment}", paced, resume_unfinished=False
    ).fit()
    assert len(results) == 2 and results.num_errors == 0
    assert all(r.metrics["training_iteration"] < EPOCHS for r in results)
    s3.invalidate_cache()
    assert {p: s3.cat_file(p) for p in logs} == logs


def fails_until_allowed(config):
    """Fails at its second epoch until the file ``config["allow"]`` exists."""
    checkpoint = tune.get_checkpoint()
    for epoch in range(3):
        with tempfile.TemporaryDirectory() as folder:
            tune.report(
                {"resumed": checkpoint is not None},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )
        if epoch == 1 and not os.path.exists(config["allow"]):
            raise RuntimeError("not allowed yet")


def test_restart_errored_starts_failed_trials_afresh(s3, tmp_path):
    allow = tmp_path / "allow"
    first = tune.Tuner(
        fails_until_allowed,
        param_space={"allow": str(allow)},
        run_config=quiet(storage_path=f"s3://{BUCKET}/restart", name="errored"),
    ).fit()
    assert first.num_errors == 1
    experiment = f"{BUCKET}/restart/errored"
    allow.touch()

    results = tune.Tuner.restore(
        f"s3://{experiment}", fails_until_allowed, restart_errored=True
    ).fit()
    (result,) = results
    assert result.error is None
    assert result.metrics["resumed"] is False
    assert result.metrics["iterations_since_restore"] == 3
    folder = result.path.removeprefix("s3://")
    s3.invalidate_cache()
    assert _iterations(s3, f"{folder}/result.json") == [1, 2, 3]
    assert _iterations(s3, f"{folder}/result.json.before_restart") == [1, 2]


@pytest.mark.filterwarnings("ignore:param_space")
def test_restore_with_param_space_supplies_released_inputs_again(s3):
    weights = b"w" * (2 << 20)  # large: kept in the object store, not in params
    space = {
        "a": tune.grid_search([1.0, 2.0]),
        "epochs": EPOCHS,
        "weights": weights,
    }
    trainable = tune.with_parameters(paced, table=list(range(100)))
    experiment = f"{BUCKET}/inputs/supplied"
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        run_config=quiet(storage_path=f"s3://{BUCKET}/inputs", name="supplied"),
    )
    _interrupt_after_checkpoints(tuner, s3, experiment)
    uri = f"s3://{experiment}"
    with pytest.raises(RestoreError, match="param_space="):
        tune.Tuner.restore(uri, trainable).fit()

    again = tune.with_parameters(paced, table=list(range(100)))
    results = tune.Tuner.restore(uri, again, param_space=space).fit()
    _assert_resumed(results, s3)
    for result in results:
        assert result.metrics["weights"] == 2 << 20
        assert result.metrics["table"] == 100


# ---- which checkpoints are kept -------------------------------------------------


def scored(config):
    for step, score in enumerate(config["scores"]):
        with tempfile.TemporaryDirectory() as folder:
            tune.report(
                {"score": score, "step": step},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


@pytest.mark.parametrize(
    "order, scores, kept",
    [
        ("max", [5, 1, 9, 3, 7], ["checkpoint_000002", "checkpoint_000004"]),
        ("min", [5, 1, 9, 3, 0.5], ["checkpoint_000001", "checkpoint_000004"]),
    ],
)
def test_checkpoint_score_chooses_the_checkpoints_kept(s3, order, scores, kept):
    prefix = f"{BUCKET}/scored-{order}"
    results = tune.Tuner(
        scored,
        param_space={"scores": scores},
        run_config=quiet(
            storage_path=f"s3://{prefix}",
            name="exp",
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2,
                checkpoint_score_attribute="score",
                checkpoint_score_order=order,
            ),
        ),
    ).fit()
    s3.invalidate_cache()
    restored = tune.Tuner.restore(f"s3://{prefix}/exp", scored).get_results()
    for grid in (results, restored):
        (result,) = grid
        folder = result.path.removeprefix("s3://")
        stored = sorted(
            p.rsplit("/", 1)[-1] for p in s3.ls(folder) if "/checkpoint_" in p
        )
        assert stored == kept
        best = result.best_checkpoints
        assert sorted(c.path.rsplit("/", 1)[-1] for c, _ in best) == kept
        assert sorted(m["score"] for _, m in best) == sorted(
            scores[int(name[-1])] for name in kept
        )
        assert result.checkpoint.path.endswith("checkpoint_000004")


# ---- no daemon, and storage that cannot work ------------------------------------


def test_restored_results_are_read_with_no_daemon_running(s3, storage):
    tune.Tuner(
        checkpointing,
        param_space={"a": tune.grid_search([1.0, 2.0]), "epochs": 2},
        run_config=quiet(storage_path=f"s3://{BUCKET}/offline", name="exp"),
    ).fit()
    tune.Tuner(
        checkpointing,
        param_space={"a": 3.0, "epochs": 2},
        run_config=quiet(name="local"),
    ).fit()
    cluster.shutdown()
    wait_for(lambda: not tune_daemon_processes(), 15, "the daemons to exit")

    for path, trials in (
        (f"s3://{BUCKET}/offline/exp", 2),
        (str(storage / "local"), 1),
    ):
        grid = tune.Tuner.restore(path, checkpointing).get_results()
        assert len(grid) == trials and grid.num_errors == 0
        for result in grid:
            assert list(result.metrics_dataframe["training_iteration"]) == [1, 2]
            with result.checkpoint.as_directory() as local:
                with open(os.path.join(local, "model.pkl"), "rb") as f:
                    assert pickle.load(f)["epoch"] == 1
    assert not tune_daemon_processes(), "reading results started a daemon"
    assert cluster._embedded is None


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_endpoint_fails_before_any_trial(s3, storage, monkeypatch):
    import s3fs

    cluster.shutdown()
    uri = f"s3://{BUCKET}/unreachable"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_closed_port()}")
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with pytest.raises(StorageError) as failed:
            tune.Tuner(
                checkpointing,
                param_space={"a": 1.0, "epochs": 1},
                run_config=quiet(storage_path=uri),
            ).fit()
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    message = str(failed.value)
    assert uri in message
    assert "Could not connect to the endpoint" in message
    assert "AWS_ENDPOINT_URL_S3" in message
    assert not tune_daemon_processes(), "a cluster started before the check"


def test_missing_bucket_is_not_created_and_fails_before_any_trial(s3, storage):
    cluster.shutdown()
    uri = "s3://no-such-tune-bucket/results"
    with pytest.raises(StorageError) as failed:
        tune.Tuner(
            checkpointing,
            param_space={"a": 1.0, "epochs": 1},
            run_config=quiet(storage_path=uri),
        ).fit()
    message = str(failed.value)
    assert uri in message
    assert "bucket 'no-such-tune-bucket' does not exist" in message
    assert "Create the bucket first" in message
    s3.invalidate_cache()
    assert not s3.exists("no-such-tune-bucket")
    assert not tune_daemon_processes(), "a cluster started before the check"


def test_damaged_params_in_a_bucket_are_named_by_their_uri(s3):
    tune.Tuner(
        checkpointing,
        param_space={"a": tune.grid_search([1.0, 2.0]), "epochs": 1},
        run_config=quiet(storage_path=f"s3://{BUCKET}/damaged", name="exp"),
    ).fit()
    experiment = f"{BUCKET}/damaged/exp"
    trial = sorted(p for p in s3.ls(experiment) if s3.isdir(p))[-1]
    s3.pipe_file(f"{trial}/params.json", s3.cat_file(f"{trial}/params.json")[:5])
    s3.invalidate_cache()
    before = _bucket_digest(s3, experiment)

    with pytest.raises(RestoreError) as failed:
        tune.Tuner.restore(f"s3://{experiment}", checkpointing).fit()
    assert f"s3://{trial}/params.json is damaged" in str(failed.value)
    s3.invalidate_cache()
    assert _bucket_digest(s3, experiment) == before
