"""Bad input and failing trials: what the user sees, end to end.

Input that cannot work fails in ``Tuner(...)`` or ``fit()`` with one of the
``tune_client.errors`` exceptions before any trial runs; a trial that fails
comes back as an errored ``Result`` with its traceback, and is retried from
its latest checkpoint as ``FailureConfig`` allows.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

import tune_client as tune
from tests.conftest import daemon_env
from tune_client import Tuner
from tune_client.errors import (
    NotSerializableError,
    SearchSpaceError,
    StorageError,
    TuneConfigError,
)


def quiet(**kwargs) -> tune.RunConfig:
    return tune.RunConfig(verbose=0, **kwargs)


def read_result_lines(path: str) -> list[dict]:
    import json

    with open(os.path.join(path, "result.json")) as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# A trainable that raises
# ---------------------------------------------------------------------------


def boom_trainable(config):
    tune.report({"score": 1.0})
    raise ValueError("boom")


def test_raising_trainable_is_an_errored_result(storage):
    results = Tuner(boom_trainable, run_config=quiet()).fit()

    assert len(results) == 1
    result = results[0]
    assert result.error is not None
    text = str(result.error)
    assert "Traceback" in text, text
    assert "ValueError: boom" in text, text
    assert "boom_trainable" in text, text  # the frame that raised
    # What was reported before the failure is kept.
    assert result.metrics["score"] == 1.0
    assert result.metrics["training_iteration"] == 1
    assert [r["training_iteration"] for r in read_result_lines(result.path)] == [1]

    error_file = os.path.join(result.path, "error.txt")
    assert os.path.isfile(error_file), os.listdir(result.path)
    with open(error_file) as f:
        saved = f.read()
    assert "ValueError: boom" in saved
    assert "Traceback" in saved

    assert results.num_errors == 1
    assert len(results.errors) == 1
    assert "ValueError: boom" in str(results.errors[0])
    assert results.num_terminated == 0


def test_error_traceback_points_at_the_users_source(storage):
    # Ray Tune's traceback shows the user's file, line and source text.
    results = Tuner(boom_trainable, run_config=quiet()).fit()
    text = str(results[0].error)
    assert "test_bad_input.py" in text, text
    assert 'raise ValueError("boom")' in text, text


def test_one_failing_trial_does_not_stop_the_others(storage):
    results = Tuner(
        failing_on_odd_trainable,
        param_space={"x": tune.grid_search([1, 2, 3, 4])},
        run_config=quiet(),
    ).fit()

    assert len(results) == 4
    assert results.num_errors == 2
    assert results.num_terminated == 2
    for result in results:
        if result.config["x"] % 2:
            assert "ValueError: odd" in str(result.error)
        else:
            assert result.error is None
            assert result.metrics["x"] == result.config["x"]


def failing_on_odd_trainable(config):
    if config["x"] % 2:
        raise ValueError("odd")
    tune.report({"x": config["x"]})


# ---------------------------------------------------------------------------
# Objects that cannot be pickled
# ---------------------------------------------------------------------------


def test_trainable_capturing_a_lock_is_rejected_before_any_trial(storage, tmp_path):
    ran = tmp_path / "ran"
    ran.mkdir()
    ran_marker = str(ran / "started")
    shared_lock = threading.Lock()

    def locked_trainable(config):
        open(ran_marker, "w").close()
        with shared_lock:
            tune.report({"x": 1})

    tuner = Tuner(locked_trainable, run_config=quiet())
    with pytest.raises(NotSerializableError) as info:
        tuner.fit()

    message = str(info.value)
    assert "shared_lock" in message, message
    assert isinstance(info.value, TuneConfigError)
    assert list(storage.iterdir()) == []
    assert not os.path.exists(ran_marker)


SCRIPT_WITH_GLOBAL_LOCK = """
import threading
import tune_client as tune

GLOBAL_GUARD = threading.Lock()

def global_lock_trainable(config):
    with GLOBAL_GUARD:
        tune.report({"x": 1})

try:
    tune.Tuner(global_lock_trainable, run_config=tune.RunConfig(verbose=0)).fit()
except tune.TuneError as exc:
    print(type(exc).__name__, exc)
"""


def test_script_trainable_using_a_global_lock_is_rejected(storage, tmp_path):
    # A script's functions travel by value with the globals they use; a module
    # the workers can import travels by reference, as in Ray Tune.
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_WITH_GLOBAL_LOCK)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=daemon_env(TUNE_RESULTS_DIR=str(storage)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("NotSerializableError"), done.stdout
    assert "GLOBAL_GUARD" in done.stdout
    assert list(storage.iterdir()) == []


def test_unpicklable_param_space_value_names_its_key(storage):
    # Search-space values are trial metadata and must pickle; the error should
    # say which entry does not (DESIGN: "one message that names the cause").
    with pytest.raises(TuneConfigError) as info:
        Tuner(
            data_trainable,
            param_space={"lr": 0.1, "model": {"guard": threading.Lock()}},
            run_config=quiet(),
        ).fit()
    message = str(info.value)
    assert "guard" in message, message
    assert list(storage.iterdir()) == []


def data_trainable(config, data):
    tune.report({"n": len(list(data))})


def test_with_parameters_unpicklable_object_names_the_parameter(storage):
    generator = (i for i in range(3))
    with pytest.raises(NotSerializableError) as info:
        Tuner(
            tune.with_parameters(data_trainable, data=generator),
            run_config=quiet(),
        ).fit()

    message = str(info.value)
    assert re.search(r"\bdata\b", message), message
    assert "generator" in message, message
    assert list(storage.iterdir()) == []


def test_with_parameters_unknown_parameter_is_a_config_error(storage):
    with pytest.raises(TuneConfigError) as info:
        tune.with_parameters(data_trainable, nope=1)
    assert "nope" in str(info.value)
    assert list(storage.iterdir()) == []


# ---------------------------------------------------------------------------
# Malformed configuration
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_param_space",
    [
        pytest.param(lambda: {"a": tune.grid_search([])}, id="empty-grid"),
        pytest.param(lambda: {1: 2}, id="non-string-key"),
        pytest.param(
            lambda: {"outer": {"a": tune.grid_search([])}}, id="nested-empty-grid"
        ),
        pytest.param(lambda: {"a": {2: tune.uniform(0, 1)}}, id="nested-int-key"),
    ],
)
def test_malformed_param_space_fails_at_construction(storage, make_param_space):
    # Failing even earlier (when the space is written) is as good as failing
    # in Tuner(...): either way no experiment is submitted.
    with pytest.raises(SearchSpaceError) as info:
        Tuner(data_trainable, param_space=make_param_space(), run_config=quiet())
    assert str(info.value)
    assert list(storage.iterdir()) == []


def test_invalid_mode_names_min_and_max(storage):
    with pytest.raises(TuneConfigError) as info:
        tune.TuneConfig(metric="loss", mode="maximize")
    message = str(info.value)
    assert "maximize" in message
    assert '"min"' in message or "'min'" in message, message
    assert '"max"' in message or "'max'" in message, message


def test_unwritable_storage_path_fails_before_any_trial(storage, tmp_path):
    regular_file = tmp_path / "not_a_folder"
    regular_file.write_text("I am a file")
    bad_path = str(regular_file / "results")
    ran = tmp_path / "ran"
    ran.mkdir()

    with pytest.raises(StorageError) as info:
        Tuner(
            marker_trainable,
            param_space={"marker": str(ran / "started")},
            run_config=quiet(storage_path=bad_path),
        ).fit()

    assert bad_path in str(info.value), str(info.value)
    assert not os.path.exists(ran / "started")
    assert list(storage.iterdir()) == []
    assert regular_file.read_text() == "I am a file"


def marker_trainable(config):
    open(config["marker"], "w").close()
    tune.report({"x": 1})


# ---------------------------------------------------------------------------
# Failures and retries
# ---------------------------------------------------------------------------

ITERATIONS = 5
CRASH_AT = 3


def crash_once_trainable(config):
    """Checkpoints every iteration; crashes at CRASH_AT on its first attempt."""
    start = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            with open(os.path.join(folder, "state.pkl"), "rb") as f:
                start = pickle.load(f)["iteration"] + 1
    for iteration in range(start, ITERATIONS + 1):
        if iteration == CRASH_AT and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("crash on the first attempt")
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.pkl"), "wb") as f:
                pickle.dump({"iteration": iteration}, f)
            tune.report(
                {"iteration": iteration, "resumed_at": start},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


def test_failure_config_retries_from_the_latest_checkpoint(storage, tmp_path):
    marker = tmp_path / "crashed_once"
    results = Tuner(
        crash_once_trainable,
        param_space={"marker": str(marker)},
        run_config=quiet(failure_config=tune.FailureConfig(max_failures=2)),
    ).fit()

    assert marker.exists()  # the first attempt did crash
    assert len(results) == 1
    result = results[0]
    assert result.error is None, str(result.error)
    assert results.num_errors == 0

    lines = read_result_lines(result.path)
    assert [r["training_iteration"] for r in lines] == list(range(1, ITERATIONS + 1))
    assert [r["iteration"] for r in lines] == list(range(1, ITERATIONS + 1))

    last = result.metrics
    assert last["training_iteration"] == ITERATIONS
    assert last["resumed_at"] == CRASH_AT
    assert last["iterations_since_restore"] < last["training_iteration"]
    assert last["iterations_since_restore"] == ITERATIONS - CRASH_AT + 1
    # Checkpoints keep counting across the restart.
    assert last["checkpoint_dir_name"] == f"checkpoint_{ITERATIONS - 1:06d}"
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as folder:
        with open(os.path.join(folder, "state.pkl"), "rb") as f:
            assert pickle.load(f) == {"iteration": ITERATIONS}


def test_no_retries_leaves_the_trial_errored(storage, tmp_path):
    marker = tmp_path / "crashed_once"
    results = Tuner(
        crash_once_trainable,
        param_space={"marker": str(marker)},
        run_config=quiet(failure_config=tune.FailureConfig(max_failures=0)),
    ).fit()

    assert len(results) == 1
    result = results[0]
    assert result.error is not None
    assert "RuntimeError: crash on the first attempt" in str(result.error)
    assert results.num_errors == 1
    lines = read_result_lines(result.path)
    assert [r["training_iteration"] for r in lines] == list(range(1, CRASH_AT))


def sigkill_trainable(config):
    tune.report({"before": 1})
    os.kill(os.getpid(), signal.SIGKILL)


def sigkill_once_trainable(config):
    attempt = 2 if os.path.exists(config["marker"]) else 1
    tune.report({"attempt": attempt})
    if attempt == 1:
        open(config["marker"], "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def test_sigkilled_trial_is_retried_under_max_failures(storage, tmp_path):
    # No checkpoint: the retry starts from scratch, and its results are what
    # the user sees, as in Ray Tune.
    marker = tmp_path / "killed_once"
    results = Tuner(
        sigkill_once_trainable,
        param_space={"marker": str(marker)},
        run_config=quiet(failure_config=tune.FailureConfig(max_failures=1)),
    ).fit()

    assert marker.exists()  # the first attempt was killed
    assert results.num_errors == 0, [str(e) for e in results.errors]
    result = results[0]
    assert result.metrics["attempt"] == 2, result.metrics
    assert result.metrics["training_iteration"] == 1
    assert result.metrics["iterations_since_restore"] == 1
    assert [r["attempt"] for r in read_result_lines(result.path)][-1] == 2


def test_trial_process_killed_by_sigkill_is_an_error(storage):
    results = Tuner(sigkill_trainable, run_config=quiet()).fit()

    assert len(results) == 1
    result = results[0]
    assert result.error is not None
    assert "SIGKILL" in str(result.error), str(result.error)
    assert result.metrics["before"] == 1
    assert results.num_errors == 1
    with open(os.path.join(result.path, "error.txt")) as f:
        assert "SIGKILL" in f.read()


def test_checkpoint_frequency_is_refused_for_function_trainables(storage):
    with pytest.raises(TuneConfigError, match="tune.report"):
        Tuner(
            data_trainable,
            run_config=tune.RunConfig(
                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2)
            ),
        )


@pytest.mark.parametrize("gpus", [1.5, 2.25])
def test_a_gpu_request_no_device_can_meet_fails_at_once(gpus):
    with pytest.raises(TuneConfigError, match="share of one GPU"):
        tune.with_resources(boom_trainable, {"cpu": 1, "gpu": gpus})


@pytest.mark.parametrize(
    "log_to_file, named",
    [
        (3, "log_to_file=3"),
        (("only_one",), "log_to_file=('only_one',)"),
        (("a", "b", "c"), "('a', 'b', 'c')"),
        ("/var/log/trial.log", "'/var/log/trial.log'"),
        ("../outside.log", "'../outside.log'"),
        (("out.txt", ""), "''"),
    ],
)
def test_bad_log_to_file_fails_at_construction_naming_the_value(log_to_file, named):
    with pytest.raises(TuneConfigError) as raised:
        tune.RunConfig(log_to_file=log_to_file)
    message = str(raised.value)
    assert "log_to_file" in message
    assert named in message
