"""The template trials are forked from loads what the trials will import.

An embedded worker preloads the heavy modules its client has imported, and
only those: a script without pandas must not wait for pandas to load before
its first trial runs. A cluster worker's ``--preload`` names them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import tune_client as tune
from tests.conftest import daemon_env
from tests.integration.conftest import start_head_and_one_worker
from tune_worker.trial_processes import DEFAULT_PRELOAD, preload_from_command_line

SCRIPT = """
import sys
{imports}
import tune_client as tune

def train(config):
    tune.report({{"pandas_loaded": "pandas" in sys.modules}})

results = tune.Tuner(
    train, run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0)
).fit()
print("TRIAL_HAD_PANDAS", results[0].metrics["pandas_loaded"])
"""


@pytest.mark.parametrize(
    ("imports", "trial_has_pandas"),
    [("", False), ("import pandas", True)],
    ids=["script without pandas", "script with pandas"],
)
def test_embedded_trials_start_with_what_the_script_imported(
    tmp_path, imports, trial_has_pandas
):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(imports=imports))
    env = daemon_env()
    env.pop("TUNE_WORKER_PRELOAD", None)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "results")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"TRIAL_HAD_PANDAS {trial_has_pandas}" in done.stdout


def test_preload_is_read_from_the_flag_then_the_environment():
    assert preload_from_command_line(["--preload", "torch, numpy"], {}) == (
        "torch",
        "numpy",
    )
    assert preload_from_command_line(["--preload="], {}) == ()
    assert preload_from_command_line([], {"TUNE_WORKER_PRELOAD": "jax"}) == ("jax",)
    assert preload_from_command_line(["--cpus", "2"], {}) == DEFAULT_PRELOAD


def report_loaded(config):
    import sys

    tune.report({"pandas_loaded": "pandas" in sys.modules})


def test_a_preload_that_is_not_installed_is_named_in_the_worker_log(
    daemons, connect, tmp_path
):
    start_head_and_one_worker(
        daemons, connect, "--preload", "pandas,no_such_module_for_tune_tests"
    )

    results = tune.Tuner(
        report_loaded,
        run_config=tune.RunConfig(storage_path=str(tmp_path / "out"), verbose=0),
    ).fit()

    # The other preloads still load, and trials run.
    assert results.num_errors == 0, results.errors
    assert results[0].metrics["pandas_loaded"] is True
    worker_log = (tmp_path / "worker-1.log").read_text()
    assert "'no_such_module_for_tune_tests' is not installed" in worker_log, worker_log
    assert "'pandas' is not installed" not in worker_log
