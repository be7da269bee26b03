"""The guide's final example, run as a newcomer runs it: `make run`'s script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, daemon_env

AUTO_FILLED = (
    "training_iteration time_this_iter_s time_total_s timestamp date done trial_id "
    "experiment_id hostname node_ip pid time_since_restore iterations_since_restore "
    "checkpoint_dir_name"
).split()
CONFIG_COLUMNS = [
    "config/hyperparameter_a",
    "config/hyperparameter_b",
    "config/epochs",
]


@pytest.mark.slow
def test_seed_example_prints_four_rows_with_every_column(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "seed_example.py")],
        env=daemon_env(TUNE_RESULTS_DIR=str(tmp_path / "results")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("Experiment finished") :].splitlines()[1:]
    # pandas wraps wide frames: header lines alternate with blocks of rows 0-3.
    header_lines = [line for line in table if line and not line[0].isdigit()]
    columns = {name for line in header_lines for name in line.split()}
    for column in ["metric", *AUTO_FILLED, *CONFIG_COLUMNS, "logdir"]:
        assert column in columns, f"{column} missing from {sorted(columns)}"
    row_ids = {line.split()[0] for line in table if line and line[0].isdigit()}
    assert row_ids == {"0", "1", "2", "3"}
    assert "4 TERMINATED" in done.stdout
