"""MLflowLoggerCallback against a real MLflow tracking store and real daemons.

Everything is read back with MLflow's own ``MlflowClient``, so the tests check
what a user sees in MLflow, not what the callback believes it sent. The store
is sqlite because mlflow 3's file store refuses to open without an opt-out.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pandas as pd
import pytest

import tune_client as tune
from tests.conftest import REPO, daemon_env

mlflow_tracking = pytest.importorskip("mlflow.tracking")
from tune_client.logger.mlflow import (  # noqa: E402 - needs mlflow, skipped above
    MLflowLoggerCallback,
    config_params,
    result_metrics,
)

MlflowClient = mlflow_tracking.MlflowClient

# mlflow's own sqlalchemy store trips this SQLAlchemy 2 deprecation on import.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> Iterator[str]:
    """One sqlite store for the module (making its schema takes a second or
    two), each test using its own experiment. The working directory moves to
    the store's folder so its default artifact root (``./mlruns``) lands there
    too, not in the repository."""
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name in (
            "MLFLOW_TRACKING_URI",
            "MLFLOW_EXPERIMENT_NAME",
            "MLFLOW_EXPERIMENT_ID",
        ):
            patch.delenv(name, raising=False)
        yield f"sqlite:///{folder}/mlflow.db"


def experiment_runs(uri: str, name: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no MLflow experiment named {name!r}"
    return client.search_runs([experiment.experiment_id])


def run_for(runs: list, result) -> object:
    """The run tagged with ``result``'s trial id (exactly one)."""
    trial_id = result.metrics["trial_id"]
    matching = [r for r in runs if r.data.tags.get("trial_id") == trial_id]
    assert len(matching) == 1, f"{len(matching)} runs for trial {trial_id}"
    return matching[0]


def steps_and_values(uri: str, run_id: str, key: str) -> tuple[list, list]:
    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, key)
    history = sorted(history, key=lambda m: m.step)
    return [m.step for m in history], [m.value for m in history]


# ---------------------------------------------------------------------------
# the guide's final example
# ---------------------------------------------------------------------------


def training_function(config, data):
    """The guide's final example, with the sleep cut to zero."""
    model = {
        "hyperparameter_a": config["hyperparameter_a"],
        "hyperparameter_b": config["hyperparameter_b"],
    }
    epochs = config["epochs"]

    checkpoint = tune.get_checkpoint()
    start_epoch = 0
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(os.path.join(checkpoint_dir, "model.pkl"), "rb") as f:
                checkpoint_dict = pickle.load(f)
        start_epoch = checkpoint_dict["epoch"] + 1
        model = checkpoint_dict["state"]

    for epoch in range(start_epoch, epochs):
        time.sleep(0)
        metric = (0.1 + model["hyperparameter_a"] * epoch / 100) ** (-1) + model[
            "hyperparameter_b"
        ] * 0.1 * data["A"].sum()
        checkpoint_dict = {"state": model, "epoch": epoch}
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            with open(os.path.join(temp_checkpoint_dir, "model.pkl"), "wb") as f:
                pickle.dump(checkpoint_dict, f)
            tune.report(
                {"metric": metric},
                checkpoint=tune.Checkpoint.from_directory(temp_checkpoint_dir),
            )


def test_guide_example_gives_one_finished_run_per_trial(storage, tracking_uri):
    data = pd.DataFrame({"A": [1, 2, 3], "B": [4, 5, 6]})
    tuner = tune.Tuner(
        tune.with_parameters(training_function, data=data),
        param_space={
            "hyperparameter_a": tune.uniform(0, 20),
            "hyperparameter_b": tune.uniform(-100, 100),
            "epochs": 10,
        },
        tune_config=tune.TuneConfig(num_samples=4, metric="metric", mode="max"),
        run_config=tune.RunConfig(
            callbacks=[
                MLflowLoggerCallback(
                    tracking_uri=tracking_uri, experiment_name="example"
                )
            ],
            verbose=0,
        ),
    )
    results = tuner.fit()
    assert results.num_errors == 0

    runs = experiment_runs(tracking_uri, "example")
    assert len(runs) == 4
    for result in results:
        run = run_for(runs, result)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == run.data.tags["trial_name"]
        params = run.data.params
        for key in ("hyperparameter_a", "hyperparameter_b"):
            assert float(params[key]) == result.config[key]
        assert params["epochs"] == "10"
        steps, values = steps_and_values(tracking_uri, run.info.run_id, "metric")
        assert steps == list(range(1, 11))
        assert values[-1] == pytest.approx(result.metrics["metric"], rel=1e-12)


# ---------------------------------------------------------------------------
# failures, restarts and artifacts
# ---------------------------------------------------------------------------


def failing_trainable(config):
    tune.report({"loss": 1.0})
    raise RuntimeError("the trainable broke on purpose")


def test_trial_error_gives_failed_run(storage, tracking_uri):
    callback = MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name="fails")
    results = tune.Tuner(
        failing_trainable,
        param_space={"lr": 0.1},
        run_config=tune.RunConfig(callbacks=[callback], verbose=0),
    ).fit()
    assert results.num_errors == 1

    (run,) = experiment_runs(tracking_uri, "fails")
    assert run.info.status == "FAILED"
    assert run.data.params == {"lr": "0.1"}
    assert steps_and_values(tracking_uri, run.info.run_id, "loss") == ([1], [1.0])


def fails_once_trainable(config):
    """Report twice, die once after a checkpoint, then finish from it."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "step.txt")) as f:
                start = int(f.read())
    for step in range(start, 4):
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "step.txt"), "w") as f:
                f.write(str(step + 1))
            tune.report(
                {"score": float(step)},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )
        marker = os.path.join(config["marker_dir"], "failed_once")
        if step == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first attempt dies")


def test_restarted_trial_continues_its_run(storage, tracking_uri, tmp_path):
    callback = MLflowLoggerCallback(tracking_uri=tracking_uri, experiment_name="retry")
    results = tune.Tuner(
        fails_once_trainable,
        param_space={"marker_dir": str(tmp_path)},
        run_config=tune.RunConfig(
            callbacks=[callback],
            failure_config=tune.FailureConfig(max_failures=1),
            verbose=0,
        ),
    ).fit()
    assert results.num_errors == 0
    assert (tmp_path / "failed_once").exists()

    (run,) = experiment_runs(tracking_uri, "retry")
    assert run.info.status == "FINISHED"
    _, values = steps_and_values(tracking_uri, run.info.run_id, "score")
    assert values[-1] == 3.0
    assert set(values) == {0.0, 1.0, 2.0, 3.0}


def fails_first_time_trainable(config):
    tune.report({"loss": 1.0})
    marker = os.path.join(config["marker_dir"], "failed_once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt dies")
    tune.report({"loss": 0.5})


def test_restored_experiment_continues_the_failed_run(storage, tracking_uri, tmp_path):
    """A fresh callback (as after a client restart) finds the trial's run by its
    tags instead of opening a second one."""
    first = tune.Tuner(
        fails_first_time_trainable,
        param_space={"marker_dir": str(tmp_path)},
        run_config=tune.RunConfig(
            callbacks=[MLflowLoggerCallback(tracking_uri, experiment_name="again")],
            verbose=0,
        ),
    ).fit()
    assert first.num_errors == 1
    (run,) = experiment_runs(tracking_uri, "again")
    assert run.info.status == "FAILED"

    tuner = tune.Tuner.restore(
        first.experiment_path, fails_first_time_trainable, resume_errored=True
    )
    # Tuner.restore keeps no callbacks (see the report); add a fresh one.
    tuner.run_config.callbacks = [
        MLflowLoggerCallback(tracking_uri, experiment_name="again")
    ]
    assert tuner.fit().num_errors == 0

    (again,) = experiment_runs(tracking_uri, "again")
    assert again.info.run_id == run.info.run_id
    assert again.info.status == "FINISHED"
    _, values = steps_and_values(tracking_uri, run.info.run_id, "loss")
    assert values[-1] == 0.5


def two_results_trainable(config):
    for i in range(2):
        tune.report({"loss": 1.0 / (i + 1)})


def test_save_artifact_uploads_the_trial_folder(storage, tracking_uri, tmp_path):
    callback = MLflowLoggerCallback(
        tracking_uri=tracking_uri,
        experiment_name="artifacts",
        tags={"team": "search"},
        save_artifact=True,
        log_params_on_trial_end=True,
    )
    results = tune.Tuner(
        two_results_trainable,
        param_space={"model": {"depth": 3, "act": "relu"}},
        run_config=tune.RunConfig(callbacks=[callback], verbose=0),
    ).fit()
    (result,) = list(results)

    (run,) = experiment_runs(tracking_uri, "artifacts")
    assert run.info.status == "FINISHED"
    assert run.data.tags["team"] == "search"
    assert run.data.params == {"model/depth": "3", "model/act": "relu"}
    client = MlflowClient(tracking_uri=tracking_uri)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "result.json" in names
    local = client.download_artifacts(run.info.run_id, "result.json", str(tmp_path))
    with open(local) as uploaded, open(os.path.join(result.path, "result.json")) as f:
        assert uploaded.read() == f.read()


def test_save_artifact_copies_a_remote_trial_folder_down(tracking_uri, tmp_path):
    """Storage reached through fsspec (here its in-memory filesystem) is copied
    to local disk before MLflow uploads it."""
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/exp/trial_0/result.json", b'{"loss": 1}\n')
    trial = SimpleNamespace(
        trial_id="remote_00000",
        trial_name="remote_00000",
        config={"lr": 0.1},
        path="memory://exp/trial_0",
        local_path="memory://exp/trial_0",
        status="TERMINATED",
    )
    callback = MLflowLoggerCallback(
        tracking_uri, experiment_name="remote", save_artifact=True
    )
    callback.setup()
    callback.on_trial_start(0, [trial], trial)
    callback.on_trial_complete(1, [trial], trial)

    (run,) = experiment_runs(tracking_uri, "remote")
    assert run.info.status == "FINISHED"
    client = MlflowClient(tracking_uri=tracking_uri)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["result.json"]


def test_experiment_comes_from_the_environment(storage, tracking_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    callback = MLflowLoggerCallback(tracking_uri=tracking_uri)
    callback.setup()
    assert callback.experiment_id == (
        MlflowClient(tracking_uri=tracking_uri)
        .get_experiment_by_name("from-env")
        .experiment_id
    )
    again = MLflowLoggerCallback(tracking_uri=tracking_uri)
    again.setup()
    assert again.experiment_id == callback.experiment_id


# ---------------------------------------------------------------------------
# conversions and the missing-extra message
# ---------------------------------------------------------------------------


def test_result_metrics_keep_numbers_only():
    result = {
        "loss": 0.5,
        "acc": 1,
        "done": True,
        "bad": math.nan,
        "big": math.inf,
        "date": "2024-01-01_00-00-00",
        "checkpoint_dir_name": None,
        "nested": {"val": 2.0, "name": "x"},
        "odd key@1": 3,
        "config": {"lr": 0.1},
    }
    metrics = {m.key: m for m in result_metrics(result, step=7, timestamp_ms=1)}
    assert {k: m.value for k, m in metrics.items()} == {
        "loss": 0.5,
        "acc": 1.0,
        "done": 1.0,
        "big": math.inf,
        "nested/val": 2.0,
        "odd key_1": 3.0,
    }
    assert {m.step for m in metrics.values()} == {7}


def test_config_params_flatten_and_cut_long_values():
    params = {p.key: p.value for p in config_params({"a": {"b": 1}, "s": "x" * 9000})}
    assert params["a/b"] == "1"
    assert len(params["s"]) == 6000


def test_missing_mlflow_names_the_extra_to_install():
    script = (
        "import sys\n"
        "sys.modules['mlflow'] = None\n"
        "import tune_client.logger\n"
        "try:\n"
        "    from tune_client.logger import MLflowLoggerCallback\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=daemon_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'tune-cluster[mlflow]'" in done.stdout
