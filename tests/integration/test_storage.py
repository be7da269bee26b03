"""Storage on a real S3 endpoint (moto's server on loopback), on a folder only
the head sees, and restores from storage alone."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

import tune_client as tune
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

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
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
