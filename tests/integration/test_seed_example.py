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


@pytest.mark.slow
def test_seed_example_prints_four_rows_with_every_column(tmp_path):
    script = (
        "import pandas, runpy\n"
        "pandas.set_option('display.max_columns', None)\n"
        "pandas.set_option('display.width', 100000)\n"
        f"runpy.run_path({str(REPO / 'examples' / 'seed_example.py')!r}, "
        "run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=daemon_env(TUNE_RESULTS_DIR=str(tmp_path / "results")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    header = next(line for line in lines if "metric" in line and "logdir" in line)
    columns = header.split()
    for column in ["metric", *AUTO_FILLED, "config/hyperparameter_a",
                   "config/hyperparameter_b", "config/epochs", "logdir"]:
        assert column in columns, f"{column} missing from {columns}"
    rows = lines[lines.index(header) + 1 :]
    assert [row.split()[0] for row in rows[:4]] == ["0", "1", "2", "3"]
    assert "4 TERMINATED" in done.stdout
